// A local user cannot hijack or stall redirected traffic: each test is an attack or a failure
// that used to work, run for real in the sandbox (the callout loaded, real sockets, a process of
// user nobody), and checks that connections go direct instead, and that the engine says why.
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "engine.h"
#include "kernel_test.h"
#include "other_user.h"

using namespace redirect;
using namespace redirect::test;

namespace {

constexpr uid_t kNobody = 65534;

engine::RuleSet rulesFor(const std::string& text)
{
    engine::RulesResult r = engine::parseRules(text);
    if (!r.ok())
        qFatal("rules: %s", r.error.str().c_str());
    return r.rules;
}

std::unique_ptr<engine::Engine> startEngine(const std::string& scope = {})
{
    engine::EngineOptions o;
    o.cgroup = scope.empty() ? sandbox().cgroup() : scope;
    o.instance = instanceName();
    o.workers = 2;
    o.repairOwnRecords = false;  // the test process is also the application
    return std::make_unique<engine::Engine>(o);
}

// A port nobody uses in this namespace (the sandbox's loopback is ours alone).
uint16_t freePort(int family = AF_INET)
{
    uint16_t port = 0;
    int fd = listenLoopback(family, &port);
    ::close(fd);
    return port;
}

// One request/answer against `port`, as an application would make it. `direct` tells whether
// the server saw this client's own socket (not a proxy's) as its peer.
const QString kPython = QStringLiteral("/usr/bin/python3");

// A process of user nobody (no groups) running a Python listener on `address`:`port`:
// prints "LISTENING" or "BIND <errno name>", then "ACCEPTED" for every connection it gets.
class NobodyListener {
public:
    NobodyListener(const std::string& address, uint16_t port)
    {
        const std::string script =
            "import socket,sys\n"
            "s=socket.socket()\n"
            "try:\n"
            "  s.bind(('" + address + "'," + std::to_string(port) + "))\n"
            "except OSError as e:\n"
            "  import errno; print('BIND', errno.errorcode[e.errno], flush=True); sys.exit(0)\n"
            "s.listen(64)\n"
            "print('LISTENING', flush=True)\n"
            "while True:\n"
            "  c,a=s.accept(); print('ACCEPTED', flush=True); c.close()\n";
        const QByteArray python = QFile::encodeName(kPython);
        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0)
            qFatal("pipe");
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(out[1], 1);
            // From "/": the test's working directory may be out of nobody's reach (a 0700 home).
            if (::chdir("/") != 0 || ::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 ||
                ::setuid(kNobody) != 0)
                ::_exit(126);
            ::execl(python.constData(), "python3", "-c", script.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(out[1]);
        out_ = out[0];
    }
    ~NobodyListener()
    {
        stop();
        ::close(out_);
    }
    void stop()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    // Next line of output within the bound, or "".
    std::string line(int timeoutMs = 5000)
    {
        std::string text;
        char c;
        pollfd p{out_, POLLIN, 0};
        while (::poll(&p, 1, timeoutMs) == 1 && ::read(out_, &c, 1) == 1) {
            if (c == '\n')
                return text;
            text += c;
        }
        return text;
    }
    // Everything it printed so far (after stop()).
    std::string rest()
    {
        std::string text;
        char buf[256];
        ::fcntl(out_, F_SETFL, O_NONBLOCK);
        for (ssize_t n; (n = ::read(out_, buf, sizeof(buf))) > 0;)
            text.append(buf, static_cast<size_t>(n));
        return text;
    }

private:
    pid_t pid_ = -1;
    int out_ = -1;
};

std::string externalRules(uint16_t proxyPort, uint16_t destPort)
{
    return R"({"version":1,"redirectors":[{"id":"vendor","name":"Vendor","external":true,"owner":"root",
      "listen":["127.0.0.1:)" + std::to_string(proxyPort) + R"("]}],
      "rules":[{"id":"to-vendor","action":"redirect","redirector":"vendor","ports":)" + std::to_string(destPort) +
           "}]}";
}

const engine::RedirectorStatus& statusOf(const std::vector<engine::RedirectorStatus>& all, const std::string& id)
{
    for (auto& s : all)
        if (s.id == id)
            return s;
    qFatal("no redirector %s", id.c_str());
}

}  // namespace

class TestTrust : public QObject {
    Q_OBJECT
private slots:
    void externalEndpointHeldByNobodyGetsNothing();
    void listenerOnAnotherLoopbackAddressIsOurs();
    void stoppedEngineFailsOpen();
    void engineOutsideScopeFailsOpen();
    void refusedCalloutUpdateChangesNothing();
};

void TestTrust::externalEndpointHeldByNobodyGetsNothing()
{
    TcpServer server(AF_INET, "pong\n", 1);
    const uint16_t proxyPort = freePort();
    auto eng = startEngine();
    QVERIFY(eng->applyRules(rulesFor(externalRules(proxyPort, server.port()))).message.empty());

    // The vendor's proxy is down: connections go direct, at once, and the engine says why.
    Exchange down = exchange(server, server.port());
    QVERIFY(down.answered);
    QVERIFY(down.direct);
    QVERIFY(!statusOf(eng->redirectors(), "vendor").available);

    // A local user binds the vendor's endpoint while it is down: it gets nothing.
    const QString why = whyOtherUsersCannotReach(kPython);  // else the child's exec fails unexplained
    QVERIFY2(why.isEmpty(), qPrintable(why));
    NobodyListener thief("127.0.0.1", proxyPort);
    QCOMPARE(QString::fromStdString(thief.line()), QStringLiteral("LISTENING"));
    QTRY_VERIFY_WITH_TIMEOUT(statusOf(eng->redirectors(), "vendor").availability.find("uid 65534") != std::string::npos,
                             10000);
    QVERIFY(!statusOf(eng->redirectors(), "vendor").available);
    for (int i = 0; i < 5; ++i) {
        Exchange x = exchange(server, server.port());
        QVERIFY(x.answered);
        QVERIFY(x.direct);
    }
    QVERIFY(eng->stats().callout[CALLOUT_STAT_UNVERIFIED] >= 5);
    thief.stop();
    const std::string thiefSaw = thief.rest();
    QVERIFY2(thiefSaw.find("ACCEPTED") == std::string::npos, thiefSaw.c_str());

    // The vendor's proxy (root, the owner the rules name) comes back: it gets the connections again.
    Child proxy({binaryPath("test_proxy"), "--id", "77", "--port", std::to_string(proxyPort)});
    QVERIFY(proxy.readLine().rfind("PORTS " + std::to_string(proxyPort), 0) == 0);
    QTRY_VERIFY_WITH_TIMEOUT(statusOf(eng->redirectors(), "vendor").available, 10000);
    QCOMPARE(statusOf(eng->redirectors(), "vendor").ownerPid, uint32_t(proxy.pid()));
    Exchange back = exchange(server, server.port(), 10000);
    if (!back.answered)
        qWarning("proxy said: %s; status: %s; unverified %llu", proxy.readLine(2000).c_str(),
                 statusOf(eng->redirectors(), "vendor").availability.c_str(),
                 (unsigned long long)eng->stats().callout[CALLOUT_STAT_UNVERIFIED]);
    QVERIFY(back.answered);
    QVERIFY(!back.direct);
    QVERIFY(proxy.readLine().rfind("HOP ", 0) == 0);
}

void TestTrust::listenerOnAnotherLoopbackAddressIsOurs()
{
    TcpServer server(AF_INET, "pong\n", 1);
    const uint16_t port = freePort();
    auto eng = startEngine();
    QVERIFY(eng->applyRules(rulesFor(R"({"version":1,"redirectors":[{"id":"two","listen":["127.0.0.2:)" +
                                     std::to_string(port) + R"("]}],"rules":[{"id":"r","action":"redirect",
      "redirector":"two","ports":)" + std::to_string(server.port()) + "}]}"))
                .message.empty());
    // The engine holds what the rules name, so another user cannot bind it...
    const QString why = whyOtherUsersCannotReach(kPython);  // else the child's exec fails unexplained
    QVERIFY2(why.isEmpty(), qPrintable(why));
    NobodyListener thief("127.0.0.2", port);
    QCOMPARE(QString::fromStdString(thief.line()), QStringLiteral("BIND EADDRINUSE"));
    // ...and the connection goes through our redirector there.
    Exchange x = exchange(server, server.port());
    QVERIFY(x.answered);
    QVERIFY(!x.direct);
    QVERIFY(statusOf(eng->redirectors(), "two").available);
}

void TestTrust::stoppedEngineFailsOpen()
{
    // The engine in its own process (the headless console), so it can be stopped.
    TcpServer server(AF_INET, "pong\n", 1);
    QTemporaryDir dir;
    const QString rules = dir.filePath("rules.json");
    {
        std::ofstream out(rules.toStdString());
        out << R"({"version":1,"redirectors":[{"id":"inspector"}],"rules":[{"id":"r","action":"redirect",
          "redirector":"inspector","ports":)" << server.port() << "}]}";
    }
    const QString log = dir.filePath("flows.jsonl");
    Child engine({binaryPath("redirect-console"), "--headless", "--rules", rules.toStdString(), "--cgroup",
                  sandbox().cgroup(), "--instance", instanceName() + "-stall", "--jsonl", log.toStdString(),
                  "--api-socket", dir.filePath("api.sock").toStdString(), "--audit-log",
                  dir.filePath("audit.log").toStdString()});
    // A connection answered the way we want within a bounded number of tries.
    auto eventually = [&](bool wantDirect, int tries, int answerMs) {
        for (int i = 0; i < tries; ++i) {
            Exchange x = exchange(server, server.port(), answerMs);
            if (x.answered && x.direct == wantDirect)
                return true;
            QThread::msleep(50);
        }
        return false;
    };
    // Running: a connection goes through the engine.
    QVERIFY2(eventually(false, 100, 1000), "the engine never took a connection");
    // Stopped (SIGSTOP): past the deadline, new connections go direct instead of hanging.
    engine.kill(SIGSTOP);
    const bool direct = eventually(true, 20, 500);
    engine.kill(SIGCONT);
    QVERIFY2(direct, "no connection went direct while the engine was stopped");
    // Resumed: the engine takes connections again.
    QVERIFY2(eventually(false, 100, 1000), "the engine did not take connections again after SIGCONT");
    engine.kill(SIGTERM);
    QVERIFY(engine.wait(20000) == 0);
    // The summary counts what went direct, and why.
    std::ifstream in(log.toStdString());
    std::string line, summary;
    while (std::getline(in, line))
        if (line.find("\"event\":\"summary\"") != std::string::npos)
            summary = line;
    QVERIFY2(summary.find("\"stalled\":0") == std::string::npos && summary.find("\"stalled\":") != std::string::npos,
             summary.c_str());
}

void TestTrust::engineOutsideScopeFailsOpen()
{
    // The callout covers only cgroup "apps"; the engine (this process) is outside it, so records
    // cannot reach its redirectors: connections from "apps" must go direct, not be reset.
    TcpServer server(AF_INET, "pong\n", 1);
    const std::string apps = sandbox().makeChildCgroup("apps");
    auto eng = startEngine(apps);
    QVERIFY(eng->applyRules(rulesFor(R"({"version":1,"redirectors":[{"id":"inspector"}],"rules":[{"id":"r",
      "action":"redirect","redirector":"inspector","ports":)" + std::to_string(server.port()) + "}]}"))
                .message.empty());
    auto status = statusOf(eng->redirectors(), "inspector");
    QVERIFY(!status.available);
    QVERIFY2(status.availability.find("outside the callout scope") != std::string::npos, status.availability.c_str());

    // An application in "apps": a forked child that moves itself there, connects, and tells the
    // parent its own address (the server's peer list lives in the parent).
    int result[2];
    QVERIFY(::pipe(result) == 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        std::ofstream(apps + "/cgroup.procs") << ::getpid() << std::flush;
        std::string report = "none";
        int fd = connectLoopback(AF_INET, server.port());
        char buf[64];
        if (fd >= 0 && ::send(fd, "ping\n", 5, MSG_NOSIGNAL) == 5) {
            pollfd p{fd, POLLIN, 0};
            sockaddr_storage local{};
            socklen_t len = sizeof(local);
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
            if (::poll(&p, 1, 5000) == 1 && ::recv(fd, buf, sizeof(buf), 0) > 0)
                report = addressText(local);
        }
        [[maybe_unused]] ssize_t w = ::write(result[1], report.data(), report.size());
        ::_exit(0);
    }
    ::close(result[1]);
    char buf[128] = {};
    pollfd p{result[0], POLLIN, 0};
    QVERIFY(::poll(&p, 1, 10000) == 1 && ::read(result[0], buf, sizeof(buf) - 1) > 0);
    ::close(result[0]);
    ::waitpid(pid, nullptr, 0);
    const std::string client = buf;
    QVERIFY2(client != "none", "the application got no answer");
    auto peers = server.peers();
    QVERIFY2(std::find(peers.begin(), peers.end(), client) != peers.end(), "the connection did not go direct");
    QTRY_VERIFY(eng->stats().callout[CALLOUT_STAT_UNVERIFIED] >= 1);
    eng->sync();
    QCOMPARE(eng->stats().openFlows, size_t(0));
}

void TestTrust::refusedCalloutUpdateChangesNothing()
{
    // The kernel refuses a map update (here: the maps are frozen, as ENOMEM or a revoked map
    // would): the engine reports it and everything stays as it was, instead of an exception that
    // would cross the GUI's event loop and leave half a rule set behind.
    TcpServer server(AF_INET, "pong\n", 1);
    auto eng = startEngine();
    const std::string before = R"({"version":1,"redirectors":[{"id":"a"}],"rules":[{"id":"ra","action":"redirect",
      "redirector":"a","ports":)" + std::to_string(server.port()) + "}]}";
    QVERIFY(eng->applyRules(rulesFor(before)).message.empty());
    const auto rulesBefore = eng->callout().rules();

    QVERIFY(::bpf_map_freeze(eng->callout().redirectorsMapFd()) == 0);
    engine::RuleError error = eng->applyRules(rulesFor(R"({"version":1,"redirectors":[{"id":"b"}],"rules":[
      {"id":"rb","action":"redirect","redirector":"b","ports":)" + std::to_string(server.port()) + "}]}"));
    QVERIFY2(error.message.find("the callout refused the new rules") != std::string::npos, error.message.c_str());
    QCOMPARE(eng->redirectors().size(), size_t(1));
    QCOMPARE(eng->redirectors()[0].id, std::string("a"));
    QCOMPARE(eng->rules(), rulesFor(before));
    const auto rulesAfter = eng->callout().rules();
    QCOMPARE(rulesAfter.size(), rulesBefore.size());
    QVERIFY(std::memcmp(rulesAfter.data(), rulesBefore.data(), rulesAfter.size() * sizeof(callout_rule)) == 0);
    Exchange x = exchange(server, server.port());
    QVERIFY(x.answered);
    QVERIFY(!x.direct);  // still through "a"

    QVERIFY(::bpf_map_freeze(eng->callout().rulesMapFd()) == 0);
    std::string why;
    QVERIFY(!eng->setRuleEnabled("ra", false, &why));
    QVERIFY2(why.find("toggle rule") != std::string::npos, why.c_str());
    QVERIFY(eng->rules().rules.at(0).enabled);
    QVERIFY(!eng->setRuleEnabled("no-such-rule", false, &why));
    QCOMPARE(why, std::string("no such rule"));
}

REDIRECT_KERNEL_TEST_MAIN(TestTrust)
#include "tst_trust.moc"

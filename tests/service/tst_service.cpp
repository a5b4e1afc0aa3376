// The service (redirect-consoled) in the test's sandbox, driven through its control API by a
// third-party client: Python with Debian's python3-grpcio, compiled from the schema file at run
// time (tests/service/api_client.py). Root changes rules, a viewer only looks, a stranger is
// refused with the documented message, and every change lands in the audit log with its uid.
#include <fstream>
#include <sstream>

#include <grp.h>
#include <signal.h>
#include <sys/stat.h>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include "callout_paths.h"
#include "service_fixture.h"

using namespace redirect::test;

class TestService : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void rootWatchesFlowsAndTogglesARule();
    void viewerSeesButCannotChange();
    void strangerIsRefusedWithTheWayIn();
    void sighupReloadsRulesAndABadFileChangesNothing();
    void demoForConsoleServesItsUserAndEndsWithIt();
};

void TestService::initTestCase()
{
    const QString why = whyOtherUsersCannotReach(kPython);
    QVERIFY2(why.isEmpty(), qPrintable(why));
    QVERIFY2(groupIdOf("nogroup") == 65534, "group nogroup (65534) is missing; Debian's base-passwd has it");
}

void TestService::rootWatchesFlowsAndTogglesARule()
{
    TcpServer server(AF_INET, "pong\n", 1);
    ServiceUnderTest service(server.port());
    QVERIFY2(service.ready(), "the service's API never answered");
    auto [code, status] = run(service.client({"status"}), 30000);
    QCOMPARE(code, 0);
    QVERIFY2(status.find(R"("rights": "change")") != std::string::npos, status.c_str());
    QVERIFY2(status.find(R"("id": "inspector")") != std::string::npos, status.c_str());

    // A real connection through the inspector shows up in the client's stream.
    const std::string destination = "127.0.0.1:" + std::to_string(server.port());
    Child watcher(service.client({"watch", "--destination", destination, "--timeout", "30"}));
    QVERIFY(eventually(server, false));
    std::string seen;
    for (std::string line; !(line = watcher.readLine(30000)).empty();)
        seen += line + "\n";
    QVERIFY2(watcher.wait(10000) == 0, seen.c_str());
    QVERIFY2(seen.find("app -> Inspector -> " + destination) != std::string::npos, seen.c_str());

    // Off through the API: the next connection goes direct; the audit log names root.
    auto [toggled, reply] = run(service.client({"toggle", "r", "off"}), 30000);
    QVERIFY2(toggled == 0, reply.c_str());
    QVERIFY(eventually(server, true));
    const std::string audit = readAll(service.path("audit.log"));
    QVERIFY2(audit.find(R"("action":"set_rule_enabled")") != std::string::npos, audit.c_str());
    QVERIFY2(audit.find(R"("uid":0)") != std::string::npos, audit.c_str());
    QVERIFY2(audit.find(R"("outcome":"applied")") != std::string::npos, audit.c_str());
}

void TestService::viewerSeesButCannotChange()
{
    TcpServer server(AF_INET, "pong\n", 1);
    ServiceUnderTest service(server.port());
    QVERIFY2(service.ready(), "the service's API never answered");
    const RunAs viewer{kNobody, 65534};  // group nogroup: the view group of this service
    auto [code, status] = run(service.client({"status"}), 30000, viewer);
    QVERIFY2(code == 0, status.c_str());
    QVERIFY2(status.find(R"("rights": "view")") != std::string::npos, status.c_str());

    auto [denied, text] = run(service.client({"toggle", "r", "off"}), 30000, viewer);
    QCOMPARE(denied, 3);
    QVERIFY2(text.find("DENIED PERMISSION_DENIED uid 65534 (nobody) may view this node but not change it: "
                       "changes need group redirect-test-no-such-group") != std::string::npos,
             text.c_str());
    // The rule stayed on: connections still go through the inspector.
    QVERIFY(eventually(server, false));
    const std::string audit = readAll(service.path("audit.log"));
    QVERIFY2(audit.find(R"("uid":65534)") != std::string::npos, audit.c_str());
    QVERIFY2(audit.find(R"("outcome":"refused: )") != std::string::npos, audit.c_str());
}

void TestService::strangerIsRefusedWithTheWayIn()
{
    TcpServer server(AF_INET, "pong\n", 1);
    ServiceUnderTest service(server.port());
    QVERIFY2(service.ready(), "the service's API never answered");
    const RunAs stranger{kNobody, 4242};  // in neither group
    auto [code, text] = run(service.client({"status"}), 30000, stranger);
    QCOMPARE(code, 3);
    QVERIFY2(text.find("DENIED PERMISSION_DENIED uid 65534 (nobody) may not use this node: viewing needs group "
                       "nogroup, changing group redirect-test-no-such-group (usermod -aG nogroup nobody") !=
                 std::string::npos,
             text.c_str());
}

void TestService::sighupReloadsRulesAndABadFileChangesNothing()
{
    TcpServer server(AF_INET, "pong\n", 1);
    ServiceUnderTest service(server.port());
    QVERIFY2(service.ready(), "the service's API never answered");
    QVERIFY(eventually(server, false));
    // The file now turns the rule off: after SIGHUP, connections go direct.
    service.writeRules(server.port(), false);
    service.hangUp();
    QVERIFY(eventually(server, true));
    // A broken file changes nothing (the rule stays off) and the audit log says why.
    service.writeRules(server.port(), true, R"(,"unknown":1)");
    service.hangUp();
    QTRY_VERIFY_WITH_TIMEOUT(readAll(service.path("audit.log")).find(R"("outcome":"rejected: )") != std::string::npos,
                             10000);
    QVERIFY(eventually(server, true));
    const std::string audit = readAll(service.path("audit.log"));
    QVERIFY2(audit.find(R"("who":"SIGHUP")") != std::string::npos, audit.c_str());
}

REDIRECT_KERNEL_TEST_MAIN(TestService)
#include "tst_service.moc"

// The console's private demo service (--for-console), as a console started through pkexec leaves
// it: its parent's real uid is the console's user, who may change it; anyone else may not; it
// stops when its console ends.
void TestService::demoForConsoleServesItsUserAndEndsWithIt()
{
    QCOMPARE(run({binaryPath("redirect-consoled"), "--demo", "--for-console", "--api-socket", "/tmp/x.sock"}, 10000).first,
             2);
    ClientFiles files;
    // The console's stand-in: a process of real uid nobody whose child is the service, all root (as
    // pkexec leaves it). Python, with effective uid root to start that child: a shell would drop it.
    Child console({"/usr/bin/setpriv", "--ruid", "65534", "--", kPython.toStdString(), "-c",
                   "import os, subprocess, sys\nprint(os.getpid(), flush=True)\n"
                   "p = subprocess.Popen(sys.argv[1:], preexec_fn=lambda: os.setuid(0))\n"
                   "print(p.pid, flush=True)\np.wait()",
                   binaryPath("redirect-consoled"), "--demo", "--for-console"});
    const std::string pid = console.readLine(10000), servicePid = console.readLine(10000);
    QVERIFY2(!pid.empty() && !servicePid.empty(), "the console's stand-in did not start");
    const std::string socket = CALLOUT_RUN_DIR "/demo-console-" + pid + ".sock";
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(QString::fromStdString(socket)), 30000);

    const RunAs user{kNobody, 4242}, stranger{4243, 4242};  // neither in a group of the service
    auto [code, status] = run(files.client(socket, {"status"}), 30000, user);
    QVERIFY2(code == 0 && status.find(R"("rights": "change")") != std::string::npos, status.c_str());
    auto [toggled, reply] = run(files.client(socket, {"toggle", "web", "off"}), 30000, user);
    QVERIFY2(toggled == 0, reply.c_str());
    auto [refused, text] = run(files.client(socket, {"status"}), 30000, stranger);
    QVERIFY2(refused == 3 && text.find("uid 4243 may not use this node") != std::string::npos, text.c_str());

    // The console dies without a word: the service stops and takes its socket (and sandbox) along.
    // Waited for to its end (its sandbox's teardown comes after the socket), so that it is not
    // cut short when the test ends. Orphaned, it is the supervisor's to reap: ended or a zombie.
    console.kill(SIGKILL);
    QTRY_VERIFY_WITH_TIMEOUT(!QFileInfo::exists(QString::fromStdString(socket)), 30000);
    auto ended = [&servicePid] {
        const std::string proc = readAll(QStringLiteral("/proc/%1/status").arg(QString::fromStdString(servicePid)));
        return proc.empty() || proc.find("State:\tZ") != std::string::npos;
    };
    QTRY_VERIFY_WITH_TIMEOUT(ended(), 30000);
}

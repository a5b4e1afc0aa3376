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

#include "kernel_test.h"
#include "other_user.h"

using namespace redirect::test;

namespace {

const QString kPython = QStringLiteral("/usr/bin/python3");
constexpr uid_t kNobody = 65534;

gid_t groupIdOf(const char* name)
{
    group* g = ::getgrnam(name);
    return g ? g->gr_gid : static_cast<gid_t>(-1);
}

std::string readAll(const QString& path)
{
    std::ifstream in(path.toStdString());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// One service with its own socket, audit log and rules, in a directory other users can reach.
class Service {
public:
    explicit Service(uint16_t port)
    {
        dir_.setAutoRemove(true);
        QFile::setPermissions(dir_.path(), QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner | QFile::ReadGroup |
                                               QFile::ExeGroup | QFile::ReadOther | QFile::ExeOther);
        for (const QString& name : {QStringLiteral("api_client.py")})
            QFile::copy(QStringLiteral(SERVICE_TEST_DIR "/") + name, path(name));
        QFile::copy(QStringLiteral(API_PROTO), path("redirect_console.proto"));
        for (const QString& name : {QStringLiteral("api_client.py"), QStringLiteral("redirect_console.proto")})
            QFile::setPermissions(path(name), QFile::ReadOwner | QFile::ReadGroup | QFile::ReadOther);
        writeRules(port, true);
        child_ = std::make_unique<Child>(std::vector<std::string>{
            binaryPath("redirect-consoled"), "--rules", path("rules.json").toStdString(), "--cgroup",
            sandbox().cgroup(), "--instance", instanceName() + "-svc", "--api-socket", socket(), "--audit-log",
            path("audit.log").toStdString(), "--view-group", "nogroup", "--admin-group", "redirect-test-no-such-group",
            "--jsonl", "-"});
    }
    ~Service()
    {
        if (child_) {
            child_->kill(SIGTERM);
            if (child_->wait(20000) == -1)
                child_->kill(SIGKILL);
        }
    }
    QString path(const QString& name) const { return dir_.filePath(name); }
    std::string socket() const { return path("api.sock").toStdString(); }
    void writeRules(uint16_t port, bool enabled, const std::string& extra = {})
    {
        std::ofstream out(path("rules.json").toStdString());
        out << R"({"version":1,"redirectors":[{"id":"inspector","name":"Inspector"}],"rules":[{"id":"r",)"
            << R"("enabled":)" << (enabled ? "true" : "false") << R"(,"action":"redirect","redirector":"inspector",)"
            << R"("ports":)" << port << "}]" << extra << "}";
    }
    std::vector<std::string> client(const std::vector<std::string>& args) const
    {
        std::vector<std::string> argv{kPython.toStdString(), path("api_client.py").toStdString(), "--proto",
                                      path("redirect_console.proto").toStdString(), "--socket", socket()};
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
    }
    /// Waits (bounded) until the API answers root.
    bool ready()
    {
        for (int i = 0; i < 100; ++i) {
            if (QFileInfo::exists(path("api.sock")) && run(client({"status"}), 30000).first == 0)
                return true;
            QThread::msleep(100);
        }
        return false;
    }
    void hangUp() { child_->kill(SIGHUP); }

private:
    QTemporaryDir dir_;
    std::unique_ptr<Child> child_;
};

// Tries (bounded) until a connection to the server answers with the wanted route.
bool eventually(TcpServer& server, bool wantDirect)
{
    for (int i = 0; i < 100; ++i) {
        Exchange x = exchange(server, server.port(), 1000);
        if (x.answered && x.direct == wantDirect)
            return true;
        QThread::msleep(50);
    }
    return false;
}

}  // namespace

class TestService : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void rootWatchesFlowsAndTogglesARule();
    void viewerSeesButCannotChange();
    void strangerIsRefusedWithTheWayIn();
    void sighupReloadsRulesAndABadFileChangesNothing();
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
    Service service(server.port());
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
    Service service(server.port());
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
    Service service(server.port());
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
    Service service(server.port());
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

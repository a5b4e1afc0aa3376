// A redirect-consoled of a test's own: its socket, audit log and rules in a directory other users can
// reach, in the test's sandbox (network namespace and cgroup), stopped when the fixture goes.
#pragma once

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <grp.h>
#include <signal.h>

#include <QFile>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QThread>

#include "kernel_test.h"
#include "other_user.h"

namespace redirect::test {

inline const QString kPython = QStringLiteral("/usr/bin/python3");
inline constexpr uid_t kNobody = 65534;

inline gid_t groupIdOf(const char* name)
{
    group* g = ::getgrnam(name);
    return g ? g->gr_gid : static_cast<gid_t>(-1);
}

inline std::string readAll(const QString& path)
{
    std::ifstream in(path.toStdString());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The third-party Python client (tests/service/api_client.py) and the schema it compiles, in a
// directory of the test's own that other users can read: the directory for a service's files too.
class ClientFiles {
public:
    ClientFiles()
    {
        dir_.setAutoRemove(true);
        QFile::setPermissions(dir_.path(), QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner | QFile::ReadGroup |
                                               QFile::ExeGroup | QFile::ReadOther | QFile::ExeOther);
        QFile::copy(QStringLiteral(SERVICE_TEST_DIR "/api_client.py"), path("api_client.py"));
        QFile::copy(QStringLiteral(API_PROTO), path("redirect_console.proto"));
        for (const QString& name : {QStringLiteral("api_client.py"), QStringLiteral("redirect_console.proto")})
            QFile::setPermissions(path(name), QFile::ReadOwner | QFile::ReadGroup | QFile::ReadOther);
    }
    QString path(const QString& name) const { return dir_.filePath(name); }
    /// The client's command line for the service on `socket`.
    std::vector<std::string> client(const std::string& socket, const std::vector<std::string>& args) const
    {
        std::vector<std::string> argv{kPython.toStdString(), path("api_client.py").toStdString(), "--proto",
                                      path("redirect_console.proto").toStdString(), "--socket", socket};
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
    }

private:
    QTemporaryDir dir_;
};

// One service with its own socket, audit log and rules, in a directory other users can reach.
class ServiceUnderTest {
public:
    explicit ServiceUnderTest(uint16_t port, std::vector<std::string> extraArgs = {})
        : ServiceUnderTest(rulesFor(port, true), std::move(extraArgs))
    {
    }
    /// With these rules (the text of a rules file); with `cgroup` (a child of the sandbox's), the
    /// service runs in that cgroup and its callout covers only it: a sandbox of its own.
    ServiceUnderTest(const std::string& rules, std::vector<std::string> extraArgs, const std::string& cgroup = {})
        : extra_(std::move(extraArgs)), cgroup_(cgroup)
    {
        std::ofstream(path("rules.json").toStdString()) << rules;
        start();
    }
    ~ServiceUnderTest()
    {
        if (child_) {
            child_->kill(SIGTERM);
            if (child_->wait(20000) == -1)
                child_->kill(SIGKILL);
        }
    }
    /// Starts the service (again, after kill()): same socket, rules, audit log and instance.
    void start()
    {
        const std::string scope = cgroup_.empty() ? sandbox().cgroup() : cgroup_;
        const std::string instance = instanceName() + "-svc" + (cgroup_.empty() ? "" : "-" + QFileInfo(QString::fromStdString(cgroup_)).fileName().toStdString());
        std::vector<std::string> argv{
            binaryPath("redirect-consoled"), "--rules", path("rules.json").toStdString(), "--cgroup", scope,
            "--instance", instance, "--api-socket", socket(), "--audit-log", path("audit.log").toStdString(),
            "--view-group", "nogroup", "--admin-group", "redirect-test-no-such-group",
            // Never the machine's history; a test's own --history comes later and wins.
            "--history", path("history.sqlite").toStdString()};
        argv.insert(argv.end(), extra_.begin(), extra_.end());
        if (!cgroup_.empty())  // the service's own sockets must be in the scope it serves
            argv.insert(argv.begin(), {"/bin/sh", "-c", "echo $$ > '" + cgroup_ + "/cgroup.procs' && exec \"$0\" \"$@\""});
        child_ = std::make_unique<Child>(argv);
    }
    /// Ends it with SIGKILL: no clean-up of its own, as a crash.
    void kill()
    {
        child_->kill(SIGKILL);
        child_->wait(20000);
        child_.reset();
    }
    QString path(const QString& name) const { return files_.path(name); }
    std::string socket() const { return path("api.sock").toStdString(); }
    /// One redirector "inspector" (named Inspector) and one rule "r" sending `port` to it.
    static std::string rulesFor(uint16_t port, bool enabled, const std::string& extra = {})
    {
        return R"({"version":1,"redirectors":[{"id":"inspector","name":"Inspector"}],"rules":[{"id":"r",)"
               R"("enabled":)" + std::string(enabled ? "true" : "false") +
               R"(,"action":"redirect","redirector":"inspector","ports":)" + std::to_string(port) + "}]" + extra + "}";
    }
    void writeRules(uint16_t port, bool enabled, const std::string& extra = {})
    {
        std::ofstream(path("rules.json").toStdString()) << rulesFor(port, enabled, extra);
    }
    std::vector<std::string> client(const std::vector<std::string>& args) const { return files_.client(socket(), args); }
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
    std::vector<std::string> extra_;
    std::string cgroup_;
    ClientFiles files_;
    std::unique_ptr<Child> child_;
};

// Tries (bounded) until a connection to the server answers with the wanted route.
inline bool eventually(TcpServer& server, bool wantDirect)
{
    for (int i = 0; i < 100; ++i) {
        Exchange x = exchange(server, server.port(), 1000);
        if (x.answered && x.direct == wantDirect)
            return true;
        QThread::msleep(50);
    }
    return false;
}

}  // namespace redirect::test

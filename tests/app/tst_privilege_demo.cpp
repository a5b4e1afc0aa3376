// The demo's private service as the console starts it (ready when its socket appears, stopped and
// reaped after, its signal mask clear, and the reason when it does not come up: pkexec missing,
// dismissed or refusing, the service failing, silent or killed), and the console's real start-up
// run by privilege_probe as user nobody (pkexec, the service offer, the real pkexec up to its
// prompt) and as root (the service directly).
#include <cerrno>
#include <csignal>

#include <grp.h>
#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>

#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QRegularExpression>
#include <QScopeGuard>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

#include "process_run.h"
#include "callout_paths.h"
#include "command_line.h"
#include "demo_service.h"
#include "other_user.h"
#include "privilege.h"
#include "privilege_test_support.h"

using namespace redirect::gui;
using namespace redirect::test;

namespace {

constexpr uid_t kNobody = 65534;

struct Run {
    bool finished = false;
    int code = -1;
    qint64 pid = 0;
    QByteArray out;
    QByteArray err;
};

// Runs the probe with a clean environment plus `extra`, as `uid` (root or nobody).
Run runProbe(const QString& probe, const QStringList& args, uid_t uid, const QMap<QString, QString>& extra, const QString& workDir)
{
    QProcessEnvironment env;
    env.insert(QStringLiteral("PATH"), QStringLiteral("/usr/local/bin:/usr/bin:/bin"));
    env.insert(QStringLiteral("HOME"), workDir);
    env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
    for (auto it = extra.begin(); it != extra.end(); ++it)
        env.insert(it.key(), it.value());
    env = stagedEnvironment(env, QFileInfo(probe).absolutePath());
    QProcess p;
    p.setProcessEnvironment(env);
    p.setWorkingDirectory(workDir);
    if (uid != 0) {
        p.setChildProcessModifier([uid] {
            // Between fork and exec: drop every group, then the gid, then the uid.
            if (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0)
                _exit(126);
        });
    }
    Run r;
    p.start(probe, args);
    if (!p.waitForStarted(10000)) {
        r.err = p.errorString().toUtf8();
        return r;
    }
    r.pid = p.processId();
    redirect::test::finishRun(p, 60000, r);
    return r;
}

QString describe(const Run& r)
{
    return QStringLiteral("exit %1, stdout [%2], stderr [%3]").arg(r.code).arg(QString::fromUtf8(r.out), QString::fromUtf8(r.err));
}

bool writeScript(const QString& path, const QByteArray& text)
{
    QFile f(path);
    return f.open(QIODevice::WriteOnly) && f.write(text) == text.size() &&
           f.setPermissions(QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner | QFile::ReadOther | QFile::ExeOther);
}

}  // namespace

class TestPrivilegeDemo : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void demoServiceIsReadyWithItsSocketAndStoppedAfter();
    void demoServiceSaysWhyItDidNotComeUp_data();
    void demoServiceSaysWhyItDidNotComeUp();
    void demoServiceWaitEndsOnAStopSignal();
    void probeAsNobody_data();
    void probeAsNobody();
    void probeAsNobodyRunsTheRealPkexec_data();
    void probeAsNobodyRunsTheRealPkexec();
    void probeAsRootStartsTheServiceDirectly();
    void consoleStopsOnASignalDuringTheOffer();

private:
    QTemporaryDir dir_;  // world-reachable: the staged probe, sockets, fake programs
    QString probe_;      // staged for nobody, with a stand-in redirect-consoled next to it
};

void TestPrivilegeDemo::initTestCase()
{
    QVERIFY(dir_.isValid());
    QVERIFY(QFile::setPermissions(dir_.path(), QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner | QFile::ReadGroup |
                                                   QFile::ExeGroup | QFile::ReadOther | QFile::ExeOther));
    probe_ = stageForOtherUser(QStringLiteral(PRIVILEGE_PROBE), dir_.filePath(QStringLiteral("bin")));
    QVERIFY2(!probe_.isEmpty(), "could not copy the probe to a world-readable directory");
    // What pkexec would run if it were ever authorized here: /bin/true, not a root service.
    QVERIFY(QFile::copy(QStringLiteral("/bin/true"), dir_.filePath(QStringLiteral("bin/redirect-consoled"))));
}

void TestPrivilegeDemo::demoServiceIsReadyWithItsSocketAndStoppedAfter()
{
    StopSignalsBlocked blocked;
    const QString socket = dir_.filePath(QStringLiteral("demo-ready.sock"));
    auto cleanup = qScopeGuard([&] { QFile::remove(socket); });
    pid_t pid = 0;
    {
        DemoService demo({QStringLiteral("/bin/sh"), QStringLiteral("-c"), QStringLiteral("touch \"$0\" && exec sleep 60"), socket},
                         socket, 30000);
        QString why;
        int code = -1;
        QVERIFY2(demo.waitReady(&why, &code), qPrintable(why));
        QCOMPARE(demo.socket(), socket);
        pid = demo.pid();
        QVERIFY(pid > 0);
        QCOMPARE(::kill(pid, 0), 0);
    }
    // Stopped and reaped: no such process, not even a zombie.
    QCOMPARE(::kill(pid, 0), -1);
    QCOMPARE(errno, ESRCH);

    // Its signal mask is clear, though the console blocks SIGINT and SIGTERM.
    const QString status = dir_.filePath(QStringLiteral("demo-status"));
    DemoService reporter(maskReporter(status), dir_.filePath(QStringLiteral("never.sock")), 30000);
    QString why;
    int code = -1;
    QVERIFY(!reporter.waitReady(&why, &code));
    QVERIFY2(why.contains(QStringLiteral("ended (exit 0)")), qPrintable(why));
    QCOMPARE(signalMaskOf(status), QByteArray("0000000000000000"));
}

void TestPrivilegeDemo::demoServiceSaysWhyItDidNotComeUp_data()
{
    QTest::addColumn<QString>("program");  // a file in dir_/fake, or an absolute program
    QTest::addColumn<QByteArray>("script");
    QTest::addColumn<int>("code");
    QTest::addColumn<QString>("why");
    const int notAdmin = redirect::app::ExitNotAdministrator;
    const int runtime = redirect::app::ExitRuntimeError;
    QTest::newRow("pkexec dismissed") << "pkexec" << QByteArray("#!/bin/sh\nexit 126\n") << notAdmin
                                      << "the administrator password was not given (pkexec exit 126";
    QTest::newRow("pkexec refused") << "pkexec" << QByteArray("#!/bin/sh\nexit 127\n") << notAdmin
                                    << "pkexec got no authorization to start the demo's service (exit 127";
    QTest::newRow("pkexec missing") << "pkexec" << QByteArray() << notAdmin << "pkexec is not installed";
    QTest::newRow("service failed") << "redirect-consoled" << QByteArray("#!/bin/sh\nexit 4\n") << runtime
                                    << "the demo service ended (exit 4) before it opened";
    QTest::newRow("service killed") << "redirect-consoled" << QByteArray("#!/bin/sh\nkill -9 $$\n") << runtime
                                    << "the demo service was killed by signal 9";
    QTest::newRow("service missing") << "redirect-consoled" << QByteArray() << runtime << "cannot run redirect-consoled: No such file";
    QTest::newRow("service silent") << "redirect-consoled" << QByteArray("#!/bin/sh\nexec /bin/sleep 60\n") << runtime
                                    << "did not open";
}

void TestPrivilegeDemo::demoServiceSaysWhyItDidNotComeUp()
{
    QFETCH(QString, program);
    QFETCH(QByteArray, script);
    QFETCH(int, code);
    QFETCH(QString, why);
    // The programs are looked up in PATH, as the console's "pkexec" is: here a directory of fakes.
    QTemporaryDir fakes;
    QVERIFY(fakes.isValid());
    if (!script.isEmpty())
        QVERIFY(writeScript(fakes.filePath(program), script));
    const QByteArray path = qgetenv("PATH");
    qputenv("PATH", QFile::encodeName(fakes.path()));
    auto restore = qScopeGuard([&] { qputenv("PATH", path); });
    DemoService demo({program, serviceExecutable(), QStringLiteral("--demo"), QStringLiteral("--for-console")},
                     fakes.filePath(QStringLiteral("never.sock")), 1000);
    QString said;
    int exitCode = -1;
    QVERIFY(!demo.waitReady(&said, &exitCode));
    QVERIFY2(said.contains(why), qPrintable(said));
    QCOMPARE(exitCode, code);
}

void TestPrivilegeDemo::demoServiceWaitEndsOnAStopSignal()
{
    StopSignalsBlocked blocked;
    QCOMPARE(pthread_kill(pthread_self(), SIGTERM), 0);  // waits, blocked, as one would in the console
    auto consume = qScopeGuard([&] {
        const timespec none{0, 0};
        sigtimedwait(&blocked.set, nullptr, &none);
    });
    DemoService demo({QStringLiteral("/bin/sh"), QStringLiteral("-c"), QStringLiteral("exec sleep 60")},
                     dir_.filePath(QStringLiteral("never.sock")), 30000);
    QString why;
    int code = -1;
    QVERIFY(!demo.waitReady(&why, &code));
    QVERIFY2(why.contains(QStringLiteral("stopped (SIGINT or SIGTERM)")), qPrintable(why));
    QCOMPARE(code, int(redirect::app::ExitOk));
}

void TestPrivilegeDemo::probeAsNobody_data()
{
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("answer");
    QTest::addColumn<QByteArray>("out");  // "@" stands for the socket, "%" for the probe's directory
    const QByteArray demoCommand = "RUN pkexec %/redirect-consoled --demo --for-console\n";
    QTest::newRow("--demo") << QStringList{"--demo", "--rules", "/etc/redirect-console/rules.json", "--workers", "2"}
                            << QString() << demoCommand;
    QTest::newRow("no service, start") << QStringList{"--api-socket", "@"} << "start"
                                       << QByteArray("RUN systemctl start redirect-console.service\nATTACH local @\n");
    QTest::newRow("no service, demo") << QStringList{"--api-socket", "@"} << "demo" << demoCommand;
    QTest::newRow("no service, continue") << QStringList{"--api-socket", "@"} << "continue" << QByteArray("ATTACH local @\n");
    QTest::newRow("no service, quit") << QStringList{"--api-socket", "@"} << "quit" << QByteArray();
    // A dialog would quit and print nothing.
    QTest::newRow("service answers") << QStringList{"--api-socket", "listening"} << "quit" << QByteArray("ATTACH local @\n");
}

void TestPrivilegeDemo::probeAsNobody()
{
    QFETCH(QStringList, args);
    QFETCH(QString, answer);
    QFETCH(QByteArray, out);
    if (geteuid() != 0)
        QSKIP("needs root to become nobody");
    const QString why = whyOtherUsersCannotReach(probe_);
    QVERIFY2(why.isEmpty(), qPrintable(why));
    int fd = -1;
    QString socket = dir_.filePath(QStringLiteral("absent.sock"));
    if (args.contains(QStringLiteral("listening"))) {
        socket = dir_.filePath(QStringLiteral("probe-listening.sock"));
        fd = makeSocket(socket, true);
        QVERIFY(fd >= 0);
    }
    auto cleanup = qScopeGuard([&] {
        if (fd >= 0) {
            ::close(fd);
            QFile::remove(socket);
        }
    });
    args.replaceInStrings(QRegularExpression(QStringLiteral("^(@|listening)$")), socket);
    const Run r = runProbe(probe_, args, kNobody,
                           {{"REDIRECT_SERVICE_AUTOANSWER", answer}, {"REDIRECT_PRIVILEGE_DRYRUN", "1"}}, dir_.path());
    QVERIFY2(r.finished, r.err.constData());
    QVERIFY2(r.code == redirect::app::ExitOk, qPrintable(describe(r)));
    out.replace('@', socket.toUtf8()).replace('%', QFileInfo(probe_).canonicalPath().toUtf8());
    QCOMPARE(r.out, out);
    if (args.contains(QStringLiteral("--rules")))  // what the user's command line lost, and why
        QVERIFY2(r.err.contains("left out: --rules /etc/redirect-console/rules.json --workers 2") &&
                     r.err.contains("polkit authorizes the program, not its arguments"),
                 r.err.constData());
}

void TestPrivilegeDemo::probeAsNobodyRunsTheRealPkexec_data()
{
    QTest::addColumn<bool>("withPkexec");
    QTest::newRow("pkexec (no polkit agent here)") << true;
    QTest::newRow("no pkexec in PATH") << false;
}

// Up to the password prompt, for real: pkexec runs, finds no agent to ask (or is missing), and the
// console says so and ends with 3, leaving nothing. A prompt itself cannot be tested here.
void TestPrivilegeDemo::probeAsNobodyRunsTheRealPkexec()
{
    QFETCH(bool, withPkexec);
    if (geteuid() != 0)
        QSKIP("needs root to become nobody");
    const QString pkexec = QStandardPaths::findExecutable(QStringLiteral("pkexec"));
    if (withPkexec && pkexec.isEmpty())
        QSKIP("pkexec is not installed: the other row covers it");
    QMap<QString, QString> env;
    if (!withPkexec)
        env.insert(QStringLiteral("PATH"), dir_.filePath(QStringLiteral("bin")));  // the probe's, no pkexec
    const Run r = runProbe(probe_, {QStringLiteral("--demo")}, kNobody, env, dir_.path());
    QVERIFY2(r.finished, r.err.constData());
    QVERIFY2(r.code == redirect::app::ExitNotAdministrator, qPrintable(describe(r)));
    QCOMPARE(r.out, QByteArray());
    const QByteArray said = withPkexec ? "redirect-console: pkexec got no authorization" : "redirect-console: pkexec is not installed";
    QVERIFY2(r.err.contains(said), r.err.constData());
    QVERIFY(!QFileInfo::exists(QStringLiteral(CALLOUT_RUN_DIR "/demo-console-%1.sock").arg(r.pid)));
}

void TestPrivilegeDemo::probeAsRootStartsTheServiceDirectly()
{
    if (geteuid() != 0)
        QSKIP("needs root");
    const Run r = runProbe(probe_, {"--demo", "--rules", "/etc/redirect-console/rules.json", "--workers", "2"}, 0,
                           {{"REDIRECT_SERVICE_AUTOANSWER", "quit"}, {"REDIRECT_PRIVILEGE_DRYRUN", "1"}}, dir_.path());
    QVERIFY2(r.finished, r.err.constData());
    QVERIFY2(r.code == redirect::app::ExitOk, qPrintable(describe(r)));
    QCOMPARE(r.out, "RUN " + QFileInfo(probe_).canonicalPath().toUtf8() +
                        "/redirect-consoled --demo --for-console --rules /etc/redirect-console/rules.json --workers 2\n");
    QVERIFY2(!r.err.contains("left out"), r.err.constData());
}

// SIGTERM (or Ctrl+C) while the offer waits for an answer ends the console there: the dialog
// closes, but not as Continue (no window, so no screenshot), and it exits 0.
void TestPrivilegeDemo::consoleStopsOnASignalDuringTheOffer()
{
    const QString shot = dir_.filePath(QStringLiteral("offer-shot.png"));
    QProcess console;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));  // with --screenshot: a window
    env.remove(QStringLiteral("REDIRECT_SERVICE_AUTOANSWER"));
    console.setProcessEnvironment(env);
    console.setProcessChannelMode(QProcess::MergedChannels);
    console.start(QStringLiteral(REDIRECT_CONSOLE_BINARY),
                  {QStringLiteral("--api-socket"), dir_.filePath(QStringLiteral("absent.sock")), QStringLiteral("--screenshot"), shot});
    QVERIFY2(console.waitForStarted(10000), qPrintable(console.errorString()));
    auto cleanup = qScopeGuard([&] {
        if (console.state() != QProcess::NotRunning) {
            console.kill();
            console.waitForFinished(5000);
        }
    });
    QByteArray said;
    while (!said.contains("no service answers at") && console.state() == QProcess::Running && console.waitForReadyRead(30000))
        said += console.readAll();
    QVERIFY2(said.contains("no service answers at"), said.constData());
    QCOMPARE(::kill(pid_t(console.processId()), SIGTERM), 0);
    QVERIFY(console.waitForFinished(30000));
    said += console.readAll();
    QCOMPARE(console.exitStatus(), QProcess::NormalExit);
    QVERIFY2(console.exitCode() == redirect::app::ExitOk, said.constData());
    QVERIFY2(said.contains("stopping on SIGTERM"), said.constData());
    QVERIFY2(!QFile::exists(shot), "the window opened after SIGTERM");
}

QTEST_MAIN(TestPrivilegeDemo)
#include "tst_privilege_demo.moc"

// The supervisor around every kernel test (supervisor.h), proven on a probe
// that misbehaves on purpose: however the test ends (crash, pass or fail with
// helpers left running, SIGTERM), its output closes, its exit status says what
// happened, and nothing it made remains (cgroups, temp dir, pin, lock).
#include <csignal>
#include <filesystem>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <QtTest>

#include "callout_loader.h"
#include "kernel_test.h"

using namespace redirect;
using namespace redirect::test;

namespace {

// Generous: only a test whose helpers keep the pipe open (the bug) comes near it.
constexpr int kBoundMs = 60000;

struct Outcome {
    bool closed = false;  // end of file on the probe's stdout and stderr
    int status = -1;      // as waitpid gives it; -1: still running at the bound
    std::string out;
    std::vector<std::string> made;
};

// The probe runs `function` with stderr joined to stdout, so that a helper holding
// either one keeps the pipe open; `exec` keeps the pid, which names the sandbox.
std::unique_ptr<Child> startProbe(const std::string& function)
{
    return std::make_unique<Child>(std::vector<std::string>{
        "/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", binaryPath("supervisor_probe"), function});
}

// Reads until end of file (bounded), then reaps the probe.
Outcome finish(Child& probe, std::string out = {})
{
    Outcome o;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBoundMs);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            break;
        std::string line = probe.readLine(static_cast<int>(left.count()));
        if (probe.eof())
            break;
        out += line + "\n";
    }
    o.closed = probe.eof();
    o.status = probe.wait(o.closed ? 10000 : 0);
    o.out = out;
    for (const QString& line : QString::fromStdString(out).split('\n'))
        if (line.startsWith("made "))
            o.made.push_back(line.mid(5).toStdString());
    return o;
}

std::string tmpBase()
{
    const char* base = std::getenv("TMPDIR");
    return base && *base ? base : "/tmp";
}

// What the supervisor of `pid` must have removed, as "path" lines; empty when all went.
QStringList leftovers(int pid, const Outcome& o)
{
    QStringList left;
    for (const auto& path : o.made)
        if (std::filesystem::exists(path))
            left << QString::fromStdString(path);
    std::string cgroup = Callout::cgroup2Root() + "/redirect-test-" + std::to_string(pid);
    if (std::filesystem::exists(cgroup))
        left << QString::fromStdString(cgroup);
    std::string prefix = "redirect-test-" + std::to_string(pid) + ".";
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(tmpBase(), ec))
        if (entry.path().filename().string().rfind(prefix, 0) == 0)
            left << QString::fromStdString(entry.path().string());
    return left;
}

QString exitText(int status)
{
    if (status == -1)
        return "still running";
    return WIFEXITED(status) ? QString("exit %1").arg(WEXITSTATUS(status))
                             : QString("signal %1").arg(WTERMSIG(status));
}

}  // namespace

class TestSupervisor : public QObject {
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QVERIFY2(::geteuid() == 0, "the probe is a kernel test: it needs root");
        QVERIFY2(QFile::exists(QString::fromStdString(binaryPath("supervisor_probe"))), "supervisor_probe not built");
        qputenv("QTEST_DISABLE_STACK_DUMP", "1");  // no gdb attach from Qt's crash handler: faster
    }

    void probeEndsCleanly_data()
    {
        QTest::addColumn<QString>("function");
        QTest::addColumn<int>("sendSignal");  // sent to the supervisor once the probe says "ready"
        QTest::addColumn<int>("exitCode");
        QTest::addColumn<QStringList>("says");
        QTest::newRow("crash") << "crashLeavingEverything" << 0 << 128 + SIGABRT
                               << QStringList{"killed by signal 6 (SIGABRT", "killed 2 process(es) the test left in",
                                              "killed 1 process(es) the test left outside its cgroup"};
        QTest::newRow("pass, helper left running") << "passLeavingHelper" << 0 << 0
                                                   << QStringList{"killed 1 process(es) the test left in"};
        QTest::newRow("fail") << "failPlainly" << 0 << 1 << QStringList{"failing on purpose"};
        QTest::newRow("SIGTERM, as ctest or a terminal sends it")
            << "waitForSignal" << int(SIGTERM) << 128 + SIGTERM
            << QStringList{"killed by signal 15 (SIGTERM", "killed 1 process(es) the test left in"};
    }

    void probeEndsCleanly()
    {
        QFETCH(QString, function);
        QFETCH(int, sendSignal);
        QFETCH(int, exitCode);
        QFETCH(QStringList, says);
        auto probe = startProbe(function.toStdString());
        const int pid = probe->pid();
        std::string out;
        if (sendSignal) {
            for (std::string line; (line = probe->readLine(kBoundMs)) != "ready";) {
                QVERIFY2(!probe->eof() && !line.empty(), out.c_str());
                out += line + "\n";
            }
            QCOMPARE(::kill(pid, sendSignal), 0);  // to the supervisor only
        }
        Outcome o = finish(*probe, out);
        QVERIFY2(o.closed, ("helpers still hold the output after " + std::to_string(kBoundMs) + " ms:\n" + o.out).c_str());
        QVERIFY2(o.status != -1 && WIFEXITED(o.status) && WEXITSTATUS(o.status) == exitCode,
                 qPrintable(exitText(o.status) + "\n" + QString::fromStdString(o.out)));
        for (const QString& text : says)
            QVERIFY2(o.out.find(text.toStdString()) != std::string::npos, qPrintable(text + " not in:\n" + QString::fromStdString(o.out)));
        if (exitCode < 128)
            QVERIFY2(o.out.find("killed by signal") == std::string::npos, o.out.c_str());
        // The probe's $TMPDIR was the supervisor's directory, and everything the probe made is gone.
        QVERIFY2(o.made.size() >= 2, o.out.c_str());
        QVERIFY2(o.made[0].rfind(tmpBase() + "/redirect-test-" + std::to_string(pid) + ".", 0) == 0, o.made[0].c_str());
        QStringList left = leftovers(pid, o);
        QVERIFY2(left.isEmpty(), qPrintable(left.join(", ")));
    }

    void childDiesWithTheThreadThatStartedIt()
    {
        // The second line behind the supervisor: PR_SET_PDEATHSIG(SIGKILL) on every Child,
        // armed before the constructor returns, even when the thread ends right after.
        std::unique_ptr<Child> child;
        std::thread([&child] { child = std::make_unique<Child>(std::vector<std::string>{"sleep", "300"}); }).join();
        int status = child->wait(kBoundMs);
        QVERIFY2(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, qPrintable(exitText(status)));
    }
};

QTEST_GUILESS_MAIN(TestSupervisor)
#include "tst_supervisor.moc"

// What the console writes as root where other users may reach, attacked the way they would: the
// instance lock (opened and held by another user), the flow log and reports (symbolic links planted
// at the path before and during a run, a bad rules file, a restart), and the engine helper they all
// go through. Runs the real redirect-console binary headless with --demo, as tst_headless does.
#include <cerrno>
#include <csignal>
#include <functional>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QScopeGuard>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>

#include "callout_paths.h"
#include "kernel_test.h"
#include "other_user.h"
#include "output_file.h"

namespace {

const QString kConsole = QStringLiteral(REDIRECT_CONSOLE);
const QString kCgroup2 = QStringLiteral("/sys/fs/cgroup/unified");
constexpr uid_t kNobody = 65534;
const QByteArray kPrecious = "precious, not the console's\n";

// errno of open(path, flags) in a child that dropped to nobody first: 0 when it opened, -1 when it
// could not drop or did not answer.
int openErrnoAsNobody(const QString& path, int flags)
{
    const QByteArray name = QFile::encodeName(path);
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = ::fork();
    if (pid == 0) {
        // Syscalls only until _exit: the parent has threads.
        int result = -1;
        if (::setgroups(0, nullptr) == 0 && ::setgid(kNobody) == 0 && ::setuid(kNobody) == 0) {
            int fd = ::open(name.constData(), flags | O_CLOEXEC);
            result = fd >= 0 ? 0 : errno;
        }
        ::_exit(::write(report[1], &result, sizeof(result)) == ssize_t(sizeof(result)) ? 0 : 1);
    }
    ::close(report[1]);
    int result = -1;
    pollfd p{report[0], POLLIN, 0};
    if (pid > 0 && (::poll(&p, 1, 10000) != 1 || ::read(report[0], &result, sizeof(result)) != ssize_t(sizeof(result)))) {
        ::kill(pid, SIGKILL);
        result = -1;
    }
    ::close(report[0]);
    if (pid > 0)
        ::waitpid(pid, nullptr, 0);
    return result;
}

// Permission bits of what is at `path` itself (a link is not followed), -1 when nothing is there.
int modeOf(const QString& path)
{
    struct stat st {};
    return ::lstat(QFile::encodeName(path).constData(), &st) == 0 ? int(st.st_mode & 07777) : -1;
}

bool isSymlink(const QString& path)
{
    struct stat st {};
    return ::lstat(QFile::encodeName(path).constData(), &st) == 0 && S_ISLNK(st.st_mode);
}

QByteArray readAll(const QString& path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray("<unreadable>");
}

bool writeAll(const QString& path, const QByteArray& data, mode_t mode)
{
    QFile f(path);
    bool ok = f.open(QIODevice::WriteOnly) && f.write(data) == data.size();
    f.close();
    return ok && ::chmod(QFile::encodeName(path).constData(), mode) == 0;
}

struct Run {
    bool finished = false;
    int code = -1;
    QByteArray err;
};

// The console to completion (bounded), with the umask of a login shell: 0644 files were the bug.
// `whileRunning` is called once with the pid right after the start.
Run runConsole(const QStringList& args, const std::function<void(qint64)>& whileRunning = {})
{
    QProcess p;
    p.setChildProcessModifier([] { ::umask(022); });
    p.setProcessChannelMode(QProcess::SeparateChannels);
    p.setStandardOutputFile(QProcess::nullDevice());
    p.start(kConsole, args);
    Run r;
    if (!p.waitForStarted(5000)) {
        r.err = p.errorString().toUtf8();
        return r;
    }
    if (whileRunning)
        whileRunning(p.processId());
    r.finished = p.waitForFinished(30000);
    if (!r.finished) {
        p.kill();
        p.waitForFinished(5000);
    }
    r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.err = p.readAllStandardError();
    return r;
}

QString describe(const Run& r)
{
    return QStringLiteral("exit %1, stderr: %2").arg(r.code).arg(QString::fromUtf8(r.err));
}

// The instance lock path of this test process (its instance name is unique to it).
QString lockPath()
{
    return QStringLiteral(CALLOUT_RUN_DIR "/%1.lock").arg(QString::fromStdString(redirect::test::instanceName()));
}

int countLines(const QByteArray& text, const QByteArray& needle)
{
    int n = 0;
    for (const QByteArray& line : text.split('\n'))
        n += line.contains(needle) ? 1 : 0;
    return n;
}

}  // namespace

class TstOutputFiles : public QObject {
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QVERIFY2(QFile::exists(kConsole), qPrintable(kConsole));
        QVERIFY2(::geteuid() == 0, "the console writes these files as root; run as root (CI does)");
    }

    void lockFileOthersCannotOpen()
    {
        const QString lock = lockPath();
        QVERIFY2(modeOf(lock) == -1, qPrintable(lock + " exists before the test"));
        {
            redirect::test::LoadedCallout callout;
            // Refused for the file's own mode, not because nobody cannot reach its directory.
            const QString why = redirect::test::whyOtherUsersCannotReach(lock);
            QVERIFY2(why.isEmpty(), qPrintable(why));
            QCOMPARE(modeOf(lock), 0600);
            QCOMPARE(openErrnoAsNobody(lock, O_RDONLY), EACCES);
        }
        QCOMPARE(modeOf(lock), -1);  // gone with the instance
    }

    void lockFileOfOlderVersionIsNarrowed()
    {
        const QString lock = lockPath();
        const bool madeDir = ::mkdir(CALLOUT_RUN_DIR, 0755) == 0;
        auto cleanup = qScopeGuard([&] {
            QFile::remove(lock);
            if (madeDir)
                ::rmdir(CALLOUT_RUN_DIR);
        });
        QVERIFY(writeAll(lock, {}, 0644));  // as versions before the fix left it
        const QString why = redirect::test::whyOtherUsersCannotReach(lock);
        QVERIFY2(why.isEmpty(), qPrintable(why));
        QCOMPARE(openErrnoAsNobody(lock, O_RDONLY), 0);  // the attack: anyone could open and flock it
        redirect::test::LoadedCallout callout;
        QCOMPARE(modeOf(lock), 0600);
        QCOMPARE(openErrnoAsNobody(lock, O_RDONLY), EACCES);
    }

    void lockPathSymlinkIsNotFollowed()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString victim = dir.filePath(QStringLiteral("victim"));
        const QString lock = lockPath();
        const bool madeDir = ::mkdir(CALLOUT_RUN_DIR, 0755) == 0;
        auto cleanup = qScopeGuard([&] {
            QFile::remove(lock);
            if (madeDir)
                ::rmdir(CALLOUT_RUN_DIR);
        });
        QVERIFY(QFile::link(victim, lock));  // dangling: following it would create the victim
        bool loaded = false;
        try {
            redirect::test::LoadedCallout callout;
            loaded = true;
        } catch (const redirect::CalloutError& e) {
            QVERIFY2(QString::fromUtf8(e.what()).contains(lock), e.what());
        }
        QVERIFY2(!loaded, "the callout loaded with a symbolic link as its lock file");
        QVERIFY(!QFile::exists(victim));
        QVERIFY(isSymlink(lock));
    }

    void linkAtThePathIsNotFollowed_data()
    {
        QTest::addColumn<QString>("option");
        QTest::addColumn<QString>("name");
        QTest::newRow("flow log") << "--jsonl" << "flows.jsonl";
        QTest::newRow("report") << "--report" << "r.csv";
    }

    void linkAtThePathIsNotFollowed()
    {
        QFETCH(QString, option);
        QFETCH(QString, name);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString victim = dir.filePath(QStringLiteral("victim"));
        const QString path = dir.filePath(name);
        QVERIFY(writeAll(victim, kPrecious, 0644));
        QVERIFY(QFile::link(victim, path));
        const Run r = runConsole({"--demo", "--duration", "1", option, path});
        QVERIFY2(r.finished, "the console did not exit within 30 s");
        QVERIFY2(r.code == 2, qPrintable(describe(r)));
        QVERIFY2(r.err.contains("symbolic link"), r.err.constData());
        QCOMPARE(readAll(victim), kPrecious);
        QCOMPARE(modeOf(victim), 0644);
        QVERIFY(isSymlink(path));
    }

    // A link planted after the start-up check: the report replaces the link, the victim stays.
    void reportLinkPlantedDuringRunIsReplaced()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString victim = dir.filePath(QStringLiteral("victim"));
        const QString report = dir.filePath(QStringLiteral("r.json"));
        QVERIFY(writeAll(victim, kPrecious, 0644));
        bool planted = false;
        const Run r = runConsole({"--demo", "--duration", "3", "--report", report}, [&](qint64 pid) {
            // The demo cgroup exists once the checks are done and the sandbox is being built.
            const QString cgroup = kCgroup2 + QStringLiteral("/redirect-demo-%1").arg(pid);
            QElapsedTimer t;
            t.start();
            while (!QDir(cgroup).exists() && t.elapsed() < 10000)
                QThread::msleep(20);
            // Whoever can write the directory can also remove what is there first.
            QFile::remove(report);
            planted = QDir(cgroup).exists() && QFile::link(victim, report);
        });
        QVERIFY2(planted, "the demo did not start within 10 s");
        QVERIFY2(r.finished && r.code == 0, qPrintable(describe(r)));
        QCOMPARE(readAll(victim), kPrecious);
        QVERIFY(!isSymlink(report));
        QCOMPARE(modeOf(report), 0600);
        QCOMPARE(QJsonDocument::fromJson(readAll(report)).object().value("schema").toString(),
                 QStringLiteral("redirect-console.report/1"));
    }

    void createdFilesAreOwnerOnly()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString log = dir.filePath(QStringLiteral("flows.jsonl"));
        const QString report = dir.filePath(QStringLiteral("r.csv"));
        const Run r = runConsole({"--demo", "--duration", "1", "--jsonl", log, "--report", report});
        QVERIFY2(r.finished && r.code == 0, qPrintable(describe(r)));
        QCOMPARE(modeOf(log), 0600);
        QCOMPARE(modeOf(report), 0600);
        QVERIFY(readAll(report).startsWith("flow_id,"));
        // Nothing else: the report's temporary file went with the rename.
        QCOMPARE(QDir(dir.path()).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot),
                 (QStringList{QStringLiteral("flows.jsonl"), QStringLiteral("r.csv")}));
    }

    void badRulesLeaveFlowLogUntouched()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString log = dir.filePath(QStringLiteral("flows.jsonl"));
        const QString report = dir.filePath(QStringLiteral("r.csv"));
        const QString rules = dir.filePath(QStringLiteral("bad.json"));
        const QByteArray before = "{\"event\":\"summary\",\"flows\":7}\n";
        QVERIFY(writeAll(log, before, 0600));
        QVERIFY(writeAll(rules, "{ \"version\": 1, \"rules\": [ { \"id\": 5 } ] }\n", 0600));
        const Run r = runConsole({"--demo", "--rules", rules, "--duration", "1", "--jsonl", log, "--report", report});
        QVERIFY2(r.finished && r.code == 2, qPrintable(describe(r)));
        QVERIFY2(r.err.startsWith(QFile::encodeName(rules) + ':'), r.err.constData());
        QCOMPARE(readAll(log), before);
        QVERIFY(!QFile::exists(report));
    }

    void flowLogIsAppendedTo()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString log = dir.filePath(QStringLiteral("flows.jsonl"));
        const Run first = runConsole({"--demo", "--duration", "1", "--jsonl", log});
        QVERIFY2(first.finished && first.code == 0, qPrintable(describe(first)));
        const QByteArray afterFirst = readAll(log);
        QCOMPARE(countLines(afterFirst, "\"event\":\"summary\""), 1);
        const Run second = runConsole({"--demo", "--duration", "1", "--jsonl", log});
        QVERIFY2(second.finished && second.code == 0, qPrintable(describe(second)));
        const QByteArray afterSecond = readAll(log);
        QVERIFY2(afterSecond.startsWith(afterFirst), "the second run did not keep the first run's lines");
        QCOMPARE(countLines(afterSecond, "\"event\":\"summary\""), 2);
        QCOMPARE(modeOf(log), 0600);
    }

    // The helper itself, for what a run of the binary cannot reach.

    void wholeFileFailureKeepsTheOldFile()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString target = dir.filePath(QStringLiteral("r.html"));
        QVERIFY(writeAll(target, kPrecious, 0600));
        std::string error;
        const bool ok = redirect::engine::writeWholeFile(
            target.toStdString(), [](std::ostream& out) { return !(out << "half a report"); }, &error);
        QVERIFY(!ok);
        QVERIFY(!error.empty());
        QCOMPARE(readAll(target), kPrecious);
        QCOMPARE(QDir(dir.path()).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot),
                 QStringList{QStringLiteral("r.html")});
    }

    void checkCreatesAndFollowsNothing()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString absent = dir.filePath(QStringLiteral("r.csv"));
        const QString dangling = dir.filePath(QStringLiteral("link.csv"));
        const QString victim = dir.filePath(QStringLiteral("victim"));
        QVERIFY(QFile::link(victim, dangling));
        std::string error;
        QVERIFY2(redirect::engine::checkWholeFileTarget(absent.toStdString(), &error), error.c_str());
        QVERIFY(!QFile::exists(absent));
        QVERIFY(!redirect::engine::checkWholeFileTarget(dangling.toStdString(), &error));
        QVERIFY2(error.find("symbolic link") != std::string::npos, error.c_str());
        QVERIFY(!QFile::exists(victim));
        QVERIFY(!redirect::engine::checkWholeFileTarget(dir.filePath("no/such/dir.csv").toStdString(), &error));
        QVERIFY2(error.find("No such file or directory") != std::string::npos, error.c_str());
    }

    void appendRefuses_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("reason");
        QTest::newRow("fifo") << "fifo" << "not a regular file";
        QTest::newRow("another owner") << "nobody" << "belongs to uid 65534";
        QTest::newRow("hard link") << "hardlink" << "hard links";
    }

    void appendRefuses()
    {
        QFETCH(QString, kind);
        QFETCH(QString, reason);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString path = dir.filePath(QStringLiteral("flows.jsonl"));
        const QByteArray name = QFile::encodeName(path);
        if (kind == "fifo") {
            QCOMPARE(::mkfifo(name.constData(), 0600), 0);  // no reader: a blocking open would hang
        } else {
            QVERIFY(writeAll(path, kPrecious, 0644));
            if (kind == "nobody")
                QCOMPARE(::chown(name.constData(), kNobody, kNobody), 0);
            else
                QCOMPARE(::link(name.constData(), QFile::encodeName(dir.filePath(QStringLiteral("other"))).constData()), 0);
        }
        redirect::engine::AppendFile file;
        std::string error;
        QVERIFY(!file.open(path.toStdString(), &error));
        QVERIFY2(QString::fromStdString(error).contains(reason), error.c_str());
        if (kind != "fifo") {
            QCOMPARE(readAll(path), kPrecious);
            QCOMPARE(modeOf(path), 0644);  // refused means unchanged, mode included
        }
    }

    void appendNarrowsAnOlderLog()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString path = dir.filePath(QStringLiteral("flows.jsonl"));
        QVERIFY(writeAll(path, kPrecious, 0644));
        redirect::engine::AppendFile file;
        std::string error;
        QVERIFY2(file.open(path.toStdString(), &error), error.c_str());
        QCOMPARE(modeOf(path), 0600);
        QVERIFY2(file.append("more\n", &error), error.c_str());
        QCOMPARE(readAll(path), kPrecious + "more\n");
    }
};

REDIRECT_KERNEL_TEST_MAIN(TstOutputFiles)
#include "tst_output_files.moc"

// The headless console as a user runs it: command line errors, --check-rules,
// the administrator check, and the --demo sandbox with JSON lines and reports.
// The console makes its own sandbox with --demo, so this test does not enter one.
// Each test checks only what its own console made (the demo's cgroup and callout
// instance are named after its pid): other consoles may run on the machine.
#include <csignal>

#include <grp.h>
#include <sys/types.h>
#include <unistd.h>

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>

#include "process_run.h"
#include "other_user.h"
#include "callout_loader.h"
#include "callout_paths.h"
#include "kernel_test.h"

namespace {

const QString kConsole = QStringLiteral(REDIRECT_CONSOLE);
const QString kWebChain = QStringLiteral("app -> Web inspector -> DLP agent -> 127.0.0.1:8080");
const QString kEchoChain = QStringLiteral("app -> Vendor X proxy -> Web inspector -> 127.0.0.1:7007");

struct Result {
    bool finished = false;
    int code = -1;
    QByteArray out;
    QByteArray err;
    qint64 ms = 0;
    qint64 pid = 0;
    QList<int> demoPrograms;  // callout programs seen attached to the demo's cgroup while it ran
};

// The cgroup a demo console names after its pid. Each test looks only at the demo it
// started: other consoles and demos may run on this machine at the same time.
QString demoCgroup(qint64 pid)
{
    return QString::fromStdString(redirect::Callout::cgroup2Root()) + "/redirect-demo-" + QString::number(pid);
}

// Ids of the callout_ programs attached to `cgroup`; an empty list when none or no cgroup.
QList<int> calloutProgramsOn(const QString& cgroup)
{
    auto [code, out] = redirect::test::run({"bpftool", "-j", "cgroup", "show", cgroup.toStdString()}, 10000);
    QList<int> ids;
    if (code != 0)
        return ids;
    for (const QJsonValue& p : QJsonDocument::fromJson(QByteArray::fromStdString(out)).array())
        if (p["name"].toString().startsWith("callout_"))
            ids << p["id"].toInt();
    return ids;
}

// Which of `ids` are still attached to some cgroup of the machine, as "cgroup: id" text.
QStringList stillAttached(const QList<int>& ids)
{
    auto [code, out] = redirect::test::run({"bpftool", "-j", "cgroup", "tree"}, 10000);
    if (code != 0)
        return {QStringLiteral("bpftool cgroup tree failed with %1").arg(code)};
    QStringList found;
    for (const QJsonValue& cgroup : QJsonDocument::fromJson(QByteArray::fromStdString(out)).array())
        for (const QJsonValue& p : cgroup["programs"].toArray())
            if (ids.contains(p["id"].toInt()))
                found << cgroup["cgroup"].toString() + ": " + QString::number(p["id"].toInt());
    return found;
}

// Pin directory and lock file of the demo's callout instance (callout_paths.h).
QStringList demoInstanceFiles(qint64 pid)
{
    const QString instance = "demo-" + QString::number(pid);
    QStringList found;
    for (const QString& path : {QString(CALLOUT_BPFFS_DIR "/") + instance, QString(CALLOUT_RUN_DIR "/") + instance + ".lock"})
        if (QFileInfo::exists(path))
            found << path;
    return found;
}

// Run the console to completion, bounded by timeoutMs (killed after it). With watchDemo,
// also wait (bounded) for the demo's callout to show up on its cgroup and record it.
// Runs the console (or a staged copy of it, see other_user.h) to its end.
Result runConsole(const QStringList& args, int timeoutMs, std::function<void()> modifier = {},
                  bool watchDemo = false, const QString& program = kConsole)
{
    Result r;
    QProcess p;
    if (modifier)
        p.setChildProcessModifier(modifier);
    if (program != kConsole)
        p.setProcessEnvironment(redirect::test::stagedEnvironment(QProcessEnvironment::systemEnvironment(),
                                                                  QFileInfo(program).absolutePath()));
    QElapsedTimer t;
    t.start();
    p.start(program, args);
    if (!p.waitForStarted(5000)) {
        r.err = p.errorString().toUtf8();
        return r;
    }
    r.pid = p.processId();
    while (watchDemo && r.demoPrograms.isEmpty() && p.state() == QProcess::Running && t.elapsed() < timeoutMs) {
        r.demoPrograms = calloutProgramsOn(demoCgroup(r.pid));
        if (r.demoPrograms.isEmpty())
            p.waitForFinished(100);
    }
    redirect::test::finishRun(p, std::max<int>(0, timeoutMs - int(t.elapsed())), r);
    r.ms = t.elapsed();
    return r;
}

QStringList lines(const QByteArray& text)
{
    QStringList all = QString::fromUtf8(text).split('\n');
    if (!all.isEmpty() && all.last().isEmpty())
        all.removeLast();
    return all;
}

// Records of an RFC 4180 CSV file; false if a line break outside quotes is not CRLF.
bool csvRecords(const QByteArray& data, QList<QStringList>* records)
{
    QStringList record;
    QString field;
    bool quoted = false;
    for (qsizetype i = 0; i < data.size(); ++i) {
        char c = data[i];
        if (quoted) {
            if (c == '"' && i + 1 < data.size() && data[i + 1] == '"') {
                field += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += QChar::fromLatin1(c);
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            record << field;
            field.clear();
        } else if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') {
            record << field;
            field.clear();
            records->append(record);
            record.clear();
            ++i;
        } else if (c == '\n' || c == '\r') {
            return false;
        } else {
            field += QChar::fromLatin1(c);
        }
    }
    return !quoted && record.isEmpty() && field.isEmpty();
}

}  // namespace

class TstHeadless : public QObject {
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QVERIFY2(QFile::exists(kConsole), qPrintable(kConsole));
        try {
            const QString root = QString::fromStdString(redirect::Callout::cgroup2Root());
            QVERIFY2(QDir(root).exists(), qPrintable(root));
        } catch (const std::exception& e) {
            QFAIL(e.what());
        }
    }

    void badFlags_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("unknown option") << QStringList{"--frobnicate"} << "unknown option --frobnicate";
        QTest::newRow("duration abc") << QStringList{"--demo", "--duration", "abc"} << "--duration abc";
        QTest::newRow("duration -1") << QStringList{"--demo", "--duration", "-1"} << "--duration -1";
        QTest::newRow("report x.txt") << QStringList{"--demo", "--report", "x.txt"} << "--report x.txt";
        QTest::newRow("workers 0") << QStringList{"--demo", "--workers", "0"} << "--workers 0";
        QTest::newRow("in-process-chains yes") << QStringList{"--demo", "--in-process-chains", "yes"}
                                               << "--in-process-chains yes: expected on or off";
        QTest::newRow("rules without value") << QStringList{"--rules"} << "--rules needs a value";
        QTest::newRow("status-every -1") << QStringList{"--demo", "--status-every", "-1"} << "--status-every -1";
        QTest::newRow("status-every 1s") << QStringList{"--demo", "--status-every", "1s"} << "--status-every 1s";
        QTest::newRow("print and jsonl -") << QStringList{"--demo", "--print", "--jsonl", "-"} << "--print and --jsonl -";
        QTest::newRow("quiet and -v") << QStringList{"--demo", "--quiet", "-v"} << "--quiet and -v";
    }

    void badFlags()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        Result r = runConsole(args, 10000);
        QVERIFY2(r.finished, "the console did not exit within 10 s");
        QCOMPARE(r.code, 2);
        QCOMPARE(r.out, QByteArray());
        QStringList err = lines(r.err);
        QCOMPARE(err.size(), 1);
        QVERIFY2(err[0].contains(message), qPrintable(err[0]));
        QVERIFY(!QFileInfo::exists(demoCgroup(r.pid)));
    }

    void checkRules()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString good = dir.filePath("good.json");
        const QString bad = dir.filePath("bad.json");
        auto write = [](const QString& path, const QByteArray& text) {
            QFile f(path);
            return f.open(QIODevice::WriteOnly) && f.write(text) == text.size();
        };
        QVERIFY(write(good, R"({
  "version": 1,
  "redirectors": [ { "id": "inspector", "name": "Web inspector" } ],
  "rules": [
    { "id": "web", "action": "redirect", "redirector": "inspector", "ports": "80,443" },
    { "id": "lan", "action": "bypass", "destination": "10.0.0.0/8" }
  ]
}
)"));
        const QByteArray badLine = R"(    { "id": "lan", "action": "bypass", "destinaton": "10.0.0.0/8" })";
        QVERIFY(write(bad, "{\n"
                           "  \"version\": 1,\n"
                           "  \"redirectors\": [ { \"id\": \"inspector\", \"name\": \"Web inspector\" } ],\n"
                           "  \"rules\": [\n" + badLine + "\n"
                           "  ]\n"
                           "}\n"));

        Result ok = runConsole({"--check-rules", good}, 10000);
        QVERIFY2(ok.finished, "--check-rules did not exit within 10 s");
        QCOMPARE(ok.code, 0);
        QStringList out = lines(ok.out);
        QCOMPARE(out.size(), 1);
        QVERIFY2(out[0].contains("valid"), qPrintable(out[0]));
        QVERIFY2(out[0].startsWith(good), qPrintable(out[0]));

        Result ko = runConsole({"--check-rules", bad}, 10000);
        QVERIFY2(ko.finished, "--check-rules did not exit within 10 s");
        QCOMPARE(ko.code, 2);
        QCOMPARE(ko.out, QByteArray());
        QStringList err = lines(ko.err);
        QCOMPARE(err.size(), 1);
        const int column = int(badLine.indexOf("\"destinaton\"")) + 1;
        const QString prefix = QStringLiteral("%1:5:%2: ").arg(bad).arg(column);
        QVERIFY2(err[0].startsWith(prefix), qPrintable(err[0] + " (expected prefix " + prefix + ")"));
        QVERIFY2(err[0].contains("unknown key \"destinaton\""), qPrintable(err[0]));

        // Valid, but probably not what was meant: warned about on stderr, exit 0.
        const QString odd = dir.filePath("odd.json");
        QVERIFY(write(odd, R"({
  "version": 1,
  "redirectors": [ { "id": "inspector", "name": "Web inspector" } ],
  "rules": [
    { "id": "old", "action": "bypass", "ports": "9", "expires": "2020-01-01T00:00:00Z" },
    { "id": "all", "action": "redirect", "redirector": "inspector" },
    { "id": "web", "action": "redirect", "redirector": "inspector", "ports": "443" }
  ]
}
)"));
        Result warned = runConsole({"--check-rules", odd}, 10000);
        QVERIFY(warned.finished);
        QCOMPARE(warned.code, 0);
        QVERIFY2(lines(warned.out).size() == 1 && lines(warned.out)[0].contains("valid"), warned.out.constData());
        const QStringList warnings = lines(warned.err);
        QCOMPARE(warnings.size(), 3);
        QVERIFY2(warnings[0].startsWith(odd + ":5:5: rule old expired already"), qPrintable(warnings[0]));
        QVERIFY2(warnings[1].startsWith(odd + ":6:5: rule all redirects every connection"), qPrintable(warnings[1]));
        QVERIFY2(warnings[2].startsWith(odd + ":7:5: rule web never matches: rule all before it"), qPrintable(warnings[2]));
        for (const QString& w : warnings)
            QVERIFY2(w.endsWith(QStringLiteral("(warning)")), qPrintable(w));

        Result missing = runConsole({"--check-rules", dir.filePath("missing.json")}, 10000);
        QVERIFY(missing.finished);
        QCOMPARE(missing.code, 2);
        QCOMPARE(lines(missing.err).size(), 1);
    }

    void notAdministrator()
    {
        // As nobody, from a copy nobody can reach (the checkout may sit in root's 0700 home).
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString console = redirect::test::stageForOtherUser(kConsole, dir.path());
        QVERIFY(!console.isEmpty());
        // Headless is the service in the foreground: the console runs the one next to it.
        const QString service = QFileInfo(kConsole).dir().filePath(QStringLiteral("redirect-consoled"));
        QVERIFY(!redirect::test::stageForOtherUser(service, dir.path()).isEmpty());
        const QString why = redirect::test::whyOtherUsersCannotReach(console);
        QVERIFY2(why.isEmpty(), qPrintable(why));
        Result r = runConsole({"--demo", "--duration", "1"}, 10000, [] {
            if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)
                ::_exit(126);
        }, false, console);
        QVERIFY2(r.finished, "the console did not exit within 10 s");
        QVERIFY2(r.code != 126, "could not drop to nobody");
        QCOMPARE(r.code, 3);
        QCOMPARE(r.out, QByteArray());
        QStringList err = lines(r.err);
        QVERIFY2(err.size() == 1, r.err.constData());
        QVERIFY2(err[0].contains("administrator"), qPrintable(err[0]));
        // It made nothing: no cgroup, no pin, no lock (as nobody it cannot load a program).
        QVERIFY(!QFileInfo::exists(demoCgroup(r.pid)));
        QCOMPARE(demoInstanceFiles(r.pid), QStringList());
    }

    void demoDurationJsonlReport()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString report = dir.filePath("r.csv");
        Result r = runConsole({"--demo", "--duration", "4", "--jsonl", "-", "--report", report}, 30000, {}, true);
        QVERIFY2(r.finished, "the demo did not exit within 30 s");
        QVERIFY2(r.code == 0, qPrintable(QStringLiteral("exit %1: %2").arg(r.code).arg(QString::fromUtf8(r.err))));

        const QStringList out = lines(r.out);
        QVERIFY(!out.isEmpty());
        int flowEnds = 0, web = 0, echo = 0, refused = 0, echoClosed = 0;
        for (qsizetype i = 0; i < out.size(); ++i) {
            QJsonParseError error;
            QJsonDocument doc = QJsonDocument::fromJson(out[i].toUtf8(), &error);
            QVERIFY2(error.error == QJsonParseError::NoError && doc.isObject(),
                     qPrintable(QStringLiteral("line %1: %2: %3").arg(i + 1).arg(error.errorString(), out[i])));
            const QJsonObject o = doc.object();
            const QString event = o["event"].toString();
            if (i == out.size() - 1) {
                QCOMPARE(event, QString("summary"));
                continue;
            }
            QVERIFY2(event == "flow_start" || event == "flow_end", qPrintable(out[i]));
            if (event != "flow_end")
                continue;
            ++flowEnds;
            QVERIFY2(!o["end"].isNull(), qPrintable(out[i]));
            const QString chain = o["chain"].toString();
            const QString reason = o["reason"].toString();
            if (chain == kWebChain)
                ++web;
            if (chain == kEchoChain)
                ++echo;
            if (reason == "refused" && (o["destination"].toString() == "127.0.0.1:8081" || chain.endsWith("127.0.0.1:8081")))
                ++refused;
            if (reason == "closed" && chain.endsWith(":7007")) {
                ++echoClosed;
                const qint64 up = o["bytes_up"].toInteger(-1);
                const qint64 down = o["bytes_down"].toInteger(-1);
                QVERIFY2(up > 0 && up == down, qPrintable(out[i]));
            }
        }
        QVERIFY2(web > 0, "no flow_end through the web chain");
        QVERIFY2(echo > 0, "no flow_end through the echo chain");
        QVERIFY2(echoClosed > 0, "no closed flow_end through the echo chain");
        QVERIFY2(refused > 0, "no refused flow_end for 127.0.0.1:8081");

        QFile csv(report);
        QVERIFY2(csv.open(QIODevice::ReadOnly), "no CSV report");
        QList<QStringList> records;
        QVERIFY2(csvRecords(csv.readAll(), &records), "CSV report is not RFC 4180 with CRLF line endings");
        QVERIFY(!records.isEmpty());
        QCOMPARE(records[0].value(0), QString("flow_id"));
        QVERIFY2(records.size() - 1 >= flowEnds,
                 qPrintable(QStringLiteral("%1 CSV rows, %2 flow_end lines").arg(records.size() - 1).arg(flowEnds)));

        // Its callout ran on its own cgroup, and everything went with the demo.
        QVERIFY2(!r.demoPrograms.isEmpty(), "no callout program seen on the demo's cgroup");
        QVERIFY(!QFileInfo::exists(demoCgroup(r.pid)));
        QTRY_COMPARE_WITH_TIMEOUT(stillAttached(r.demoPrograms), QStringList(), 10000);  // links go asynchronously
        QCOMPARE(demoInstanceFiles(r.pid), QStringList());
    }

    void sigtermWritesReport()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString live = dir.filePath("live.jsonl");
        const QString report = dir.filePath("r.json");
        QProcess p;
        p.start(kConsole, {"--demo", "--jsonl", live, "--report", report});
        QVERIFY(p.waitForStarted(5000));
        const qint64 pid = p.processId();
        bool sawEnd = false;
        QElapsedTimer t;
        t.start();
        while (!sawEnd && t.elapsed() < 20000 && p.state() == QProcess::Running) {
            QFile f(live);
            if (f.open(QIODevice::ReadOnly))
                sawEnd = f.readAll().contains("\"event\":\"flow_end\"");
            if (!sawEnd)
                p.waitForFinished(100);
        }
        if (!sawEnd) {
            p.kill();
            p.waitForFinished(5000);
            QFAIL(qPrintable("no flow_end within 20 s: " + QString::fromUtf8(p.readAllStandardError())));
        }
        const QList<int> programs = calloutProgramsOn(demoCgroup(pid));
        ::kill(pid_t(pid), SIGTERM);
        if (!p.waitForFinished(15000)) {
            p.kill();
            p.waitForFinished(5000);
            QFAIL("the console did not exit within 15 s of SIGTERM");
        }
        QCOMPARE(p.exitStatus(), QProcess::NormalExit);
        QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());

        QFile r(report);
        QVERIFY2(r.open(QIODevice::ReadOnly), "no JSON report");
        QJsonParseError error;
        QJsonDocument doc = QJsonDocument::fromJson(r.readAll(), &error);
        QVERIFY2(error.error == QJsonParseError::NoError, qPrintable(error.errorString()));
        QCOMPARE(doc.object()["schema"].toString(), QString("redirect-console.report/1"));
        QVERIFY(doc.object()["flows"].isArray());
        QVERIFY(!doc.object()["flows"].toArray().isEmpty());

        QFile l(live);
        QVERIFY(l.open(QIODevice::ReadOnly));
        const QStringList all = lines(l.readAll());
        QVERIFY(!all.isEmpty());
        QJsonDocument last = QJsonDocument::fromJson(all.last().toUtf8());
        QCOMPARE(last.object()["event"].toString(), QString("summary"));

        QVERIFY2(!programs.isEmpty(), "no callout program seen on the demo's cgroup");
        QVERIFY(!QFileInfo::exists(demoCgroup(pid)));
        QTRY_COMPARE_WITH_TIMEOUT(stillAttached(programs), QStringList(), 10000);
        QCOMPARE(demoInstanceFiles(pid), QStringList());
    }

    void jsonlToFile()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString jsonl = dir.filePath("x.jsonl");
        Result r = runConsole({"--demo", "--duration", "2", "--jsonl", jsonl}, 30000);
        QVERIFY2(r.finished, "--duration 2 did not finish within 30 s");
        QVERIFY2(r.code == 0, r.err.constData());
        QVERIFY2(r.ms >= 2000, qPrintable(QStringLiteral("exited after %1 ms").arg(r.ms)));
        QCOMPARE(r.out, QByteArray());
        QFile f(jsonl);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QStringList all = lines(f.readAll());
        QVERIFY(!all.isEmpty());
        QCOMPARE(QJsonDocument::fromJson(all.last().toUtf8()).object()["event"].toString(), QString("summary"));
    }
};

QTEST_GUILESS_MAIN(TstHeadless)
#include "tst_headless.moc"

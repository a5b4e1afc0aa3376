// The headless console on a terminal (a pseudo-terminal; its log on a pipe of its own): one aligned
// line per ended flow, status lines, the summary that names what each counter means, --quiet,
// -v/-vv, and --jsonl - that keeps stdout pure JSON lines. Runs --demo, whose sandbox the console
// makes and removes itself; the test's own transfer runs inside it (see pty_console.h).
#include <QElapsedTimer>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMap>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include <unistd.h>

#include "callout_loader.h"
#include "process_run.h"
#include "pty_console.h"

namespace {

const QString kConsole = QStringLiteral(REDIRECT_CONSOLE);
constexpr uint16_t kEchoPort = 7007;
constexpr size_t kTransferBytes = 2621440;  // 2.5 MiB up, the same back

QString demoCgroup(qint64 pid)
{
    return QString::fromStdString(redirect::Callout::cgroup2Root()) + "/redirect-demo-" + QString::number(pid);
}

QStringList lines(const QByteArray& text)
{
    QStringList all = QString::fromUtf8(text).split('\n');
    if (!all.isEmpty() && all.last().isEmpty())
        all.removeLast();
    return all;
}

QByteArray readAll(const QString& path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

QList<QJsonObject> jsonLines(const QString& path)
{
    QList<QJsonObject> objects;
    for (const QString& line : lines(readAll(path)))
        objects << QJsonDocument::fromJson(line.toUtf8()).object();
    return objects;
}

const QRegularExpression kClock(QStringLiteral("^\\d\\d:\\d\\d:\\d\\d\\.\\d\\d\\d "));

// A run's terminal output sorted by kind.
struct Printed {
    QString header;
    QStringList flows;
    QStringList status;
    QStringList summary;  // from "Summary after" on
    QStringList other;
};

Printed sortOut(const QByteArray& out)
{
    Printed p;
    for (const QString& line : lines(out)) {
        if (!p.summary.isEmpty() || line.startsWith("Summary after "))
            p.summary << line;
        else if (line.startsWith("TIME "))
            p.header = p.header.isEmpty() ? line : "two headers";
        else if (kClock.match(line).hasMatch() && line.contains(" status: "))
            p.status << line;
        else if (kClock.match(line).hasMatch())
            p.flows << line;
        else
            p.other << line;
    }
    return p;
}

// The fields of a flow line, cut at the header's columns: process, chain, destination, and the rest
// (end reason, bytes up, bytes down) as words.
struct FlowFields {
    QString process, chain, destination;
    QStringList rest;
};

FlowFields fields(const QString& header, const QString& line)
{
    const qsizetype process = header.indexOf("PROCESS"), chain = header.indexOf("CHAIN"),
                    destination = header.indexOf("DESTINATION") - 3, end = header.indexOf("END");
    return {line.mid(process, chain - process).trimmed(), line.mid(chain, destination - chain).trimmed(),
            line.mid(destination, end - destination).trimmed(), line.mid(end).simplified().split(' ')};
}

// The summary's line for a counter: its name, its value, and what it means.
QString summaryLine(const QStringList& summary, const QString& name)
{
    for (const QString& line : summary)
        if (line.startsWith("  " + name + "  "))
            return line;
    return {};
}

// Starts the console on a terminal with `args`: "" or why not.
QString start(redirect::test::PtyConsole& console, const QStringList& args)
{
    QString error;
    return console.start(kConsole, args, &error) ? QString() : error;
}

// Reads the console's output to its end (bounded): "" when it exited with 0, else what went wrong.
QString finish(redirect::test::PtyConsole& console)
{
    if (!console.waitExit(40000))
        return QStringLiteral("the console did not exit within 40 s");
    return console.code == 0 ? QString() : QStringLiteral("exit %1: %2").arg(console.code).arg(QString(console.err));
}

// A run through a pipe, for process_run.h.
struct PipeRun {
    bool finished = false;
    int code = -1;
    QByteArray out;
    QByteArray err;
};

}  // namespace

class TstHeadlessTerminal : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { QVERIFY2(QFile::exists(kConsole), qPrintable(kConsole)); }

    void flowLinesStatusAndSummary()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString jsonl = dir.filePath("flows.jsonl");
        redirect::test::PtyConsole console;
        const QString started = start(console, {"--demo", "--duration", "8", "--status-every", "1", "--jsonl", jsonl});
        QVERIFY2(started.isEmpty(), qPrintable(started));
        QString error;
        // The transfer once the demo redirects (its first flow is in the log), not before its callout is attached.
        QElapsedTimer waited;
        waited.start();
        while (!readAll(jsonl).contains("\"event\":\"flow_start\"") && waited.elapsed() < 20000)
            console.pump(100);
        const pid_t transfer = redirect::test::transferInDemo(console, demoCgroup(console.pid()), kEchoPort,
                                                              kTransferBytes, &error);
        const QString ended = finish(console);
        QVERIFY2(ended.isEmpty(), qPrintable(ended));
        QVERIFY2(transfer > 0, qPrintable(error));

        const Printed printed = sortOut(console.out);
        QVERIFY2(printed.other.isEmpty(), qPrintable("unexpected on the terminal: " + printed.other.join('\n')));
        QVERIFY2(!printed.header.isEmpty() && printed.header != "two headers", qPrintable(printed.header));
        // The log is on stderr, at info by default; none of it on the terminal's stdout.
        QVERIFY2(console.err.contains("[info]"), console.err.constData());
        QVERIFY(!console.err.contains("[debug]"));
        QVERIFY(!console.out.contains("[info]"));

        // One line per ended flow: as many as flow_end lines in the flow log, with the same process and reason.
        const QList<QJsonObject> json = jsonLines(jsonl);
        QMap<QString, int> ends, printedEnds;
        QJsonObject transferEnd, summary;
        for (const QJsonObject& o : json) {
            if (o["event"] == "summary")
                summary = o;
            if (o["event"] != "flow_end")
                continue;
            ends[QStringLiteral("%1[%2] %3").arg(o["comm"].toString()).arg(o["pid"].toInteger()).arg(o["reason"].toString())]++;
            if (o["pid"].toInteger() == transfer)
                transferEnd = o;
        }
        QVERIFY2(!printed.flows.isEmpty(), console.out.constData());
        int endCount = 0;
        for (int n : ends)
            endCount += n;
        QCOMPARE(printed.flows.size(), endCount);
        int transferLines = 0, webLines = 0;
        for (const QString& line : printed.flows) {
            // Aligned: every line as wide as the header, under 120 columns, a space before each column.
            QCOMPARE(line.size(), printed.header.size());
            QVERIFY2(line.size() < 120, qPrintable(line));
            for (const char* column : {"PROCESS", "CHAIN", "   DESTINATION", "END"})
                QVERIFY2(line[printed.header.indexOf(column) - 1] == ' ', qPrintable(line));
            const FlowFields f = fields(printed.header, line);
            QVERIFY2(f.rest.size() == 5, qPrintable(line));  // reason, up (number unit), down (number unit)
            printedEnds[f.process + " " + f.rest[0]]++;
            if (f.chain == "Web inspector -> DLP agent" && f.destination == "-> 127.0.0.1:8080")
                ++webLines;
            if (f.process != QStringLiteral("tst-xfer[%1]").arg(transfer))
                continue;
            ++transferLines;
            QCOMPARE(f.chain, QString("Vendor X proxy -> Web inspector"));
            QCOMPARE(f.destination, QString("-> 127.0.0.1:7007"));
            QCOMPARE(f.rest, (QStringList{"closed", "2.5", "MiB", "2.5", "MiB"}));
        }
        QCOMPARE(printedEnds, ends);
        QVERIFY2(transferLines == 1, qPrintable(QStringLiteral("%1 lines of tst-xfer[%2] in:\n%3")
                                                    .arg(transferLines).arg(transfer).arg(printed.flows.filter("tst-").join('\n'))));
        QVERIFY2(webLines > 0, "no flow line through the web chain");
        // The flow log agrees on the transfer's bytes.
        QCOMPARE(transferEnd["chain"].toString(), QString("app -> Vendor X proxy -> Web inspector -> 127.0.0.1:7007"));
        QCOMPARE(transferEnd["bytes_up"].toInteger(), qint64(kTransferBytes));
        QCOMPARE(transferEnd["bytes_down"].toInteger(), qint64(kTransferBytes));

        // Status lines (the demo's traffic changes something every second or so).
        QVERIFY2(!printed.status.isEmpty(), console.out.constData());
        const QRegularExpression status(QStringLiteral(
            " status: \\d+ open, \\d+\\.\\d new flows/s, [\\d.]+ (B|KiB|MiB|GiB)/s, \\d+ drops$"));
        for (const QString& line : printed.status)
            QVERIFY2(status.match(line).hasMatch(), qPrintable(line));

        // The summary: each counter with its meaning, the same numbers as the JSON summary.
        QVERIFY2(!summary.isEmpty(), "no JSON summary in the flow log");
        const QList<std::tuple<QString, QString, QString>> counters = {
            {"queue drops", "queue_drops", "flow updates the engine's consumers did not take in time (0 means none were lost)"},
            {"callout event drops", "callout_event_drops", "callout events the kernel could not queue for the engine"},
            {"classified", "classified", "connects the callout looked at"},
            {"redirected", "redirected", "connects the callout sent to a redirector"},
            {"hop cap", "hop_cap", "cap of 8 redirectors"},
            {"records missing", "records_missing", "repaired by the callout"},
            {"stalled", "stalled", "because the engine showed no life"},
            {"unverified", "unverified", "no verified listener"},
            {"evicted", "evicted", "dropped from the table"},
            {"udp dropped", "udp_dropped", "datagrams the UDP relay dropped"},
            {"flows", "flows", "flows in the engine's table at exit"},
            {"open flows", "open_flows", "still open"}};
        for (const auto& [name, key, meaning] : counters) {
            const QString line = summaryLine(printed.summary, name);
            QVERIFY2(!line.isEmpty(), qPrintable(name + " missing from:\n" + printed.summary.join('\n')));
            const QStringList words = line.mid(2 + name.size()).simplified().split(' ');
            QVERIFY2(words.value(0) == QString::number(summary[key].toInteger()),
                     qPrintable(line + " / JSON " + key + " " + QString::number(summary[key].toInteger())));
            QVERIFY2(line.contains(meaning), qPrintable(line));
        }
    }

    void quietPrintsNothing()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString jsonl = dir.filePath("flows.jsonl");
        redirect::test::PtyConsole console;
        const QString started = start(console, {"--demo", "--duration", "3", "--quiet", "--jsonl", jsonl});
        QVERIFY2(started.isEmpty(), qPrintable(started));
        const QString ended = finish(console);
        QVERIFY2(ended.isEmpty(), qPrintable(ended));
        QCOMPARE(console.out, QByteArray());
        for (const char* level : {"[info]", "[debug]", "[trace]"})
            QVERIFY2(!console.err.contains(level), console.err.constData());
        // Flows ended all the same: quiet is about the output, not the traffic.
        int ends = 0;
        for (const QJsonObject& o : jsonLines(jsonl))
            ends += o["event"] == "flow_end";
        QVERIFY(ends > 0);
    }

    void verboseLogs_data()
    {
        QTest::addColumn<QString>("flag");
        QTest::addColumn<bool>("trace");
        QTest::newRow("-v") << "-v" << false;
        QTest::newRow("--verbose") << "--verbose" << false;
        QTest::newRow("-vv") << "-vv" << true;
    }

    void verboseLogs()
    {
        QFETCH(QString, flag);
        QFETCH(bool, trace);
        redirect::test::PtyConsole console;
        const QString started = start(console, {"--demo", "--duration", "3", flag});
        QVERIFY2(started.isEmpty(), qPrintable(started));
        const QString ended = finish(console);
        QVERIFY2(ended.isEmpty(), qPrintable(ended));
        QVERIFY2(console.err.contains("[debug]"), console.err.constData());
        const QByteArray level = trace ? "trace" : "debug";
        QVERIFY2(console.err.contains("stdout: flow lines, status lines, summary; log level " + level),
                 console.err.constData());
        QCOMPARE(console.err.contains("[trace]"), trace);
        QVERIFY(!console.out.contains("[debug]"));
        QVERIFY(!sortOut(console.out).flows.isEmpty());  // -v adds to the log, takes nothing away
    }

    void jsonlStdoutStaysJson()
    {
        redirect::test::PtyConsole console;
        const QString started = start(console, {"--demo", "--duration", "3", "--jsonl", "-"});
        QVERIFY2(started.isEmpty(), qPrintable(started));
        const QString ended = finish(console);
        QVERIFY2(ended.isEmpty(), qPrintable(ended));
        const QStringList out = lines(console.out);
        QVERIFY(out.size() > 1);
        for (const QString& line : out) {
            QJsonParseError e;
            const QJsonDocument doc = QJsonDocument::fromJson(line.toUtf8(), &e);
            QVERIFY2(e.error == QJsonParseError::NoError && doc.isObject(), qPrintable(line));
        }
        QCOMPARE(QJsonDocument::fromJson(out.last().toUtf8()).object()["event"].toString(), QString("summary"));
    }

    void printWithoutTerminal()
    {
        // --print: the same lines into a pipe (a person's `| less`); without it a pipe gets none
        // (tst_headless jsonlToFile).
        QProcess p;
        p.start(kConsole, {"--demo", "--duration", "3", "--print", "--status-every", "0"});
        QVERIFY(p.waitForStarted(5000));
        PipeRun r;
        redirect::test::finishRun(p, 30000, r);
        QVERIFY2(r.finished && r.code == 0, r.err.constData());
        const Printed printed = sortOut(r.out);
        QVERIFY(!printed.header.isEmpty());
        QVERIFY(!printed.flows.isEmpty());
        QVERIFY2(printed.status.isEmpty(), "--status-every 0 printed status lines");
        QVERIFY(!summaryLine(printed.summary, "queue drops").isEmpty());
    }

    void intoClosedPipe_data()
    {
        QTest::addColumn<QStringList>("output");
        QTest::addColumn<int>("code");
        QTest::addColumn<QByteArray>("message");
        // Lines for people are lost with a warning; a collector's JSON lines are an error (exit 1).
        QTest::newRow("--print") << QStringList{"--print"} << 0
                                 << QByteArray("[warning] flow lines: stdout: Broken pipe; no more are printed");
        QTest::newRow("--jsonl -") << QStringList{"--jsonl", "-"} << 1
                                   << QByteArray("[error] JSON lines: stdout: Broken pipe; later lines are lost");
    }

    void intoClosedPipe()
    {
        // `... | head -1`: the reader goes, the service says so once and runs to its end.
        QFETCH(QStringList, output);
        QFETCH(int, code);
        QFETCH(QByteArray, message);
        QProcess p;
        p.setChildProcessModifier([] {
            // Stdout: a pipe whose reader is gone already.
            int fds[2];
            if (::pipe(fds) != 0 || ::close(fds[0]) != 0 || ::dup2(fds[1], STDOUT_FILENO) < 0)
                ::_exit(126);
        });
        p.start(kConsole, QStringList{"--demo", "--duration", "3"} + output);
        QVERIFY(p.waitForStarted(5000));
        PipeRun r;
        redirect::test::finishRun(p, 30000, r);
        QVERIFY2(r.finished && r.code == code, r.err.constData());
        QCOMPARE(r.err.count(message), 1);
    }
};

QTEST_GUILESS_MAIN(TstHeadlessTerminal)
#include "tst_headless_terminal.moc"

// The headless flow line for people: columns that stay aligned and within 120 characters whatever
// the names, cut with an ellipsis (never inside a UTF-8 character, never the pid), the destination
// by host when the peek saw one, "udp" before a UDP flow's. The lines on a real terminal:
// tst_headless_terminal.
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <QtTest>

#include "flow_printer.h"

using redirect::app::FlowPrinter;
using redirect::engine::EndReason;
using redirect::engine::Flow;
using redirect::engine::Hop;

namespace {

// Characters (code points) of UTF-8 text.
qsizetype columns(const std::string& line)
{
    return QString::fromStdString(line).toUcs4().size();
}

Hop hop(uint32_t id, const std::string& name)
{
    Hop h;
    h.redirectorId = id;
    h.redirector = name;
    return h;
}

Flow ended(const std::string& comm, std::vector<Hop> hops, const std::string& destination, const std::string& host = {})
{
    Flow f;
    f.flowId = 1;
    f.pid = 4242;
    f.comm = comm;
    f.startNs = 1'700'000'000'000'000'000;
    f.endNs = f.startNs + 1'500'000;
    f.hops = std::move(hops);
    f.destination = destination;
    f.host = host;
    f.reason = EndReason::Unreachable;
    f.bytesUp = 1536;
    f.bytesDown = 3ULL << 30;
    return f;
}

}  // namespace

class TstFlowPrinter : public QObject {
    Q_OBJECT

private slots:
    void shortFieldsAsTheyAre()
    {
        const std::string line = FlowPrinter::flowLine(ended("curl", {hop(1, "A"), hop(0, "")}, "10.0.0.1:443"));
        const QString text = QString::fromStdString(line);
        QVERIFY2(QRegularExpression("^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} curl\\[4242\\] +A +-> 10\\.0\\.0\\.1:443 +unreachable "
                                    "+1\\.5 KiB +3\\.0 GiB$")
                     .match(text)
                     .hasMatch(),
                 line.c_str());
        QCOMPARE(columns(line), columns(FlowPrinter::headerLine()));
        QVERIFY(!text.contains(QChar(0x2026)));
        // No redirector took it: "direct".
        QVERIFY(QString::fromStdString(FlowPrinter::flowLine(ended("curl", {}, "10.0.0.1:443"))).contains(" direct "));
        // A UDP flow says so before its destination (here its DNS query name); TCP's line does not.
        Flow dns = ended("dig", {hop(1, "A")}, "10.0.0.53:53", "example.org");
        dns.protocol = IPPROTO_UDP;
        const std::string udpLine = FlowPrinter::flowLine(dns);
        QVERIFY2(udpLine.find(" -> udp example.org ") != std::string::npos, udpLine.c_str());
        QCOMPARE(columns(udpLine), columns(FlowPrinter::headerLine()));
        QVERIFY(line.find("udp") == std::string::npos);
    }

    void longFieldsCutWithEllipsis()
    {
        const std::string line = FlowPrinter::flowLine(
            ended("a-very-long-comm", {hop(1, "Web inspector"), hop(2, "DLP agent"), hop(3, "Vendor X proxy")},
                  "[2001:db8::1]:443", "a.very.long.host.name.example.com"));
        const QString text = QString::fromStdString(line);
        QCOMPARE(columns(line), columns(FlowPrinter::headerLine()));
        QVERIFY2(columns(line) < 120, line.c_str());
        QVERIFY2(text.count(QChar(0x2026)) == 3, line.c_str());         // comm, chain, host
        QVERIFY2(text.contains(QStringLiteral("\u2026[4242] ")), line.c_str());  // the pid stays
        QVERIFY2(text.contains(QStringLiteral(" Web inspector -> DLP agent -> V")), line.c_str());
        QVERIFY2(text.contains(QStringLiteral(" -> a.very.long.host.n\u2026 ")), line.c_str());  // host, not address
    }

    void utf8NamesCutBetweenCharacters()
    {
        // 40 two-byte characters: cut by characters, the line stays valid UTF-8 and aligned.
        std::string name;
        for (int i = 0; i < 40; ++i)
            name += "\xc3\xa9";  // é
        const std::string line = FlowPrinter::flowLine(ended("curl", {hop(1, name)}, "10.0.0.1:443"));
        QVERIFY(QString::fromStdString(line).toStdString() == line);  // round-trips: no broken sequence
        QCOMPARE(columns(line), columns(FlowPrinter::headerLine()));
    }

    void statusOnlyWhenSomethingChanged()
    {
        int fds[2];
        QVERIFY(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
        auto closeBoth = qScopeGuard([&] { ::close(fds[0]), ::close(fds[1]); });
        auto printed = [&] {
            char buf[4096];
            ssize_t n = ::read(fds[0], buf, sizeof(buf));
            return n > 0 ? QString::fromUtf8(buf, n) : QString();
        };
        using namespace std::chrono_literals;
        const auto t0 = FlowPrinter::Clock::now();
        FlowPrinter printer(fds[1], 1.0, t0);
        redirect::engine::EngineStats stats;
        QVERIFY(!printer.statusDue(t0 + 500ms));
        QVERIFY(printer.statusDue(t0 + 1s));
        printer.status(t0 + 1s, stats);
        QCOMPARE(printed(), QString());  // nothing happened: no line

        Flow f = ended("curl", {hop(1, "A")}, "10.0.0.1:443");
        f.endNs = 0;
        f.reason = EndReason::Open;
        f.bytesUp = 1024;
        f.bytesDown = 0;
        printer.write({f});
        QCOMPARE(printed(), QString());  // open: no flow line yet
        stats.openFlows = 1;
        printer.status(t0 + 2s, stats);
        QVERIFY2(printed().endsWith(" status: 1 open, 1.0 new flows/s, 1.0 KiB/s, 0 drops\n"), "first status");
        printer.status(t0 + 3s, stats);
        QCOMPARE(printed(), QString());  // the same as before: no line
        stats.queueDrops = 2;
        printer.status(t0 + 4s, stats);
        QVERIFY(printed().endsWith(" status: 1 open, 0.0 new flows/s, 0 B/s, 2 drops\n"));

        // It ends: the header, then its line, once, whatever late updates follow.
        f.endNs = f.startNs + 1;
        f.reason = EndReason::Closed;
        f.bytesDown = 2048;
        printer.write({f, f});
        printer.write({f});
        const QStringList lines = printed().split('\n', Qt::SkipEmptyParts);
        QCOMPARE(lines.size(), 2);
        QVERIFY(lines[0].startsWith("TIME "));
        QCOMPARE(lines[1].toStdString(), FlowPrinter::flowLine(f));
        stats.openFlows = 0;
        printer.status(t0 + 6s, stats);
        QVERIFY(printed().endsWith(" status: 0 open, 0.0 new flows/s, 1.0 KiB/s, 2 drops\n"));  // 2 KiB in 2 s
    }
};

QTEST_APPLESS_MAIN(TstFlowPrinter)
#include "tst_flow_printer.moc"

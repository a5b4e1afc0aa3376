// Reports over the flow table: every format read back by an independent
// reader (Python's csv and json modules, nlohmann, headless Chromium), flows
// with hostile strings. Scoping, progress and size have tst_report_scope.
#include <map>
#include <netinet/in.h>

#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>
#include <QUrl>

#include "report_fixtures.h"

using namespace redirect::engine;
using namespace report_test;

namespace {

/// The documented CSV formula guard, applied independently of the writer.
std::string guarded(const std::string& text)
{
    return !text.empty() && std::string("=+-@\t\r").find(text[0]) != std::string::npos ? "'" + text : text;
}

std::string clean(const std::string& text) { return text == kBadUtf8Comm ? kBadUtf8Clean : text; }

const char* const kStateNames[] = {"NOT_REDIRECTED", "REDIRECTED_BY_SELF", "REDIRECTED_BY_OTHER",
                                   "PREVIOUSLY_REDIRECTED_BY_SELF"};

template <typename F> std::string joinHops(const Flow& flow, F part)
{
    std::string text;
    for (size_t i = 0; i < flow.hops.size(); ++i)
        text += (i ? ";" : "") + part(flow.hops[i]);
    return text;
}

struct Run {
    bool finished = false;
    int exitCode = -1;
    QByteArray out, err;
};

Run runProcess(const QString& program, const QStringList& args, int timeoutMs = 60000)
{
    Run run;
    QProcess process;
    process.start(program, args);
    if (!process.waitForStarted(10000))
        return run;
    run.finished = process.waitForFinished(timeoutMs);
    if (!run.finished) {
        process.kill();
        process.waitForFinished(5000);
    }
    run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
    run.out = process.readAllStandardOutput();
    run.err = process.readAllStandardError();
    return run;
}

/// Python's reading of a report (report_reader.py csv|json FILE), as JSON.
std::optional<json> readWithPython(const char* mode, const QString& path, QString* why)
{
    Run run = runProcess(PYTHON3_EXECUTABLE, {REPORT_READER_SCRIPT, mode, path});
    if (!run.finished || run.exitCode != 0) {
        *why = "python3 failed: " + QString::fromUtf8(run.err);
        return std::nullopt;
    }
    json data = json::parse(run.out.toStdString(), nullptr, false);
    if (data.is_discarded()) {
        *why = "python3 printed no JSON";
        return std::nullopt;
    }
    return data;
}

/// The DOM headless Chromium built from `html` after its scripts ran, and Chromium's log.
/// Chromium's log lines that tell of a script error or any console message (the report logs none).
QByteArray consoleErrors(const QByteArray& log)
{
    QByteArray errors;
    for (const QByteArray& line : log.split('\n'))
        if (line.contains("Uncaught") || line.contains("CONSOLE"))
            errors += line + '\n';
    return errors;
}

Run renderInChromium(const QString& html)
{
    QTemporaryDir profile;
    return runProcess(CHROMIUM_EXECUTABLE,
                      {"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                       "--disable-background-networking", "--disable-component-update", "--disable-sync",
                       "--disable-extensions", "--user-data-dir=" + profile.path(), "--enable-logging=stderr",
                       "--v=0", "--dump-dom", QUrl::fromLocalFile(html).toString()});
}

QByteArray readAll(const QString& path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

}  // namespace

class TestReport : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void flowJsonSchema();
    void csvReadBackByPython();
    void csvDatagramsOnlyWhereCounted();
    void jsonReadBackByNlohmannAndPython();
    void htmlInChromium();
    void htmlSortScriptRuns();
    void chromiumLogCatchesScriptErrors();

private:
    QTemporaryDir dir_;
};

void TestReport::initTestCase()
{
    QVERIFY2(dir_.isValid(), "no temporary directory");
    QVERIFY2(QFileInfo(PYTHON3_EXECUTABLE).isExecutable(), "python3 not found at configure time: " PYTHON3_EXECUTABLE);
    QVERIFY2(QFileInfo(CHROMIUM_EXECUTABLE).isExecutable(), "chromium not found at configure time: " CHROMIUM_EXECUTABLE);
}

void TestReport::flowJsonSchema()
{
    const std::vector<Flow> flows = sampleFlows();
    json f1 = flowToJson(flows[0]);
    std::vector<std::string> keys;
    for (auto& item : f1.items())
        keys.push_back(item.key());
    std::vector<std::string> expected = {"bytes_down", "bytes_up", "cgroup_id", "chain", "comm", "datagrams_down",
                                         "datagrams_up", "destination", "duration_ms", "end", "flow_id", "hops",
                                         "host", "pid", "protocol", "reason", "route", "rule", "start", "uid",
                                         "user", "verdict"};
    QCOMPARE(keys, expected);
    COMPARE_JSON(f1["flow_id"], json(1));
    COMPARE_JSON(f1["start"], json("2023-11-14T22:13:20.123Z"));
    COMPARE_JSON(f1["end"], json(isoMs(flows[0].endNs).toStdString()));
    QCOMPARE(f1["duration_ms"].get<double>(), 1500.0);
    COMPARE_JSON(f1["cgroup_id"], json(77));
    COMPARE_JSON(f1["chain"], json("app -> Web inspector -> DLP agent -> 93.184.216.34:443"));
    COMPARE_JSON(f1["reason"], json("closed"));
    COMPARE_JSON(f1["route"], json(flows[0].routeText()));
    QCOMPARE(f1["hops"].size(), size_t(3));
    const json& h0 = f1["hops"][0];
    std::vector<std::string> hopKeys;
    for (auto& item : h0.items())
        hopKeys.push_back(item.key());
    std::vector<std::string> expectedHop = {"bytes_down", "bytes_up", "connect_ms", "context_hex", "context_size",
                                            "datagrams_down", "datagrams_up", "end", "external", "in_process",
                                            "reason", "records_hex", "records_missing",
                                            "records_size", "redirector", "redirector_id", "rule", "start", "state"};
    QCOMPARE(hopKeys, expectedHop);
    COMPARE_JSON(h0["redirector_id"], json(1));
    COMPARE_JSON(h0["redirector"], json("Web inspector"));
    COMPARE_JSON(h0["state"], json("NOT_REDIRECTED"));
    COMPARE_JSON(h0["records_size"], json(24));
    QCOMPARE(h0["records_hex"].get<std::string>().substr(0, 8), std::string("01080f16"));
    QCOMPARE(h0["records_hex"].get<std::string>().size(), size_t(48));
    QCOMPARE(h0["context_hex"].get<std::string>().substr(0, 4), std::string("fffe"));
    QCOMPARE(h0["connect_ms"].get<double>(), 1.25);
    COMPARE_JSON(h0["start"], json(isoMs(kT0 + 1'000'000).toStdString()));
    COMPARE_JSON(h0["reason"], json("closed"));
    COMPARE_JSON(f1["hops"][1]["state"], json("REDIRECTED_BY_OTHER"));
    COMPARE_JSON(f1["hops"][2]["end"], json(nullptr));
    COMPARE_JSON(f1["hops"][2]["records_hex"], json(""));

    json f3 = flowToJson(flows[2]);
    COMPARE_JSON(f3["end"], json(nullptr));
    COMPARE_JSON(f3["duration_ms"], json(nullptr));
    COMPARE_JSON(f3["reason"], json("open"));
    COMPARE_JSON(f3["user"], json("bøb ünïcödé 日本"));
    COMPARE_JSON(f3["hops"][0]["connect_ms"], json(nullptr));
    COMPARE_JSON(f3["hops"][0]["external"], json(true));
    COMPARE_JSON(f3["hops"][0]["records_missing"], json(true));

    json f6 = flowToJson(flows[5]);
    QCOMPARE(f6["flow_id"].get<uint64_t>(), kBigId);
    COMPARE_JSON(f6["comm"], json(kBadUtf8Clean));
    COMPARE_JSON(f6["reason"], json("hop_cap"));
    COMPARE_JSON(f6["hops"][2]["state"], json("PREVIOUSLY_REDIRECTED_BY_SELF"));
    QCOMPARE(f6["bytes_up"].get<uint64_t>(), kTiB);
    std::string line = f6.dump();  // throws on invalid UTF-8
    QVERIFY(line.find("18446744073709551600") != std::string::npos);
}

void TestReport::csvReadBackByPython()
{
    const std::vector<Flow> flows = sampleFlows();
    const QString path = dir_.filePath("flows.csv");
    QVERIFY(writeFile(path, ReportFormat::Csv, flows));
    const QByteArray raw = readAll(path);

    // RFC 4180 framing, checked on the bytes: CRLF after every record, bare CR and LF only quoted.
    const QByteArray header = "flow_id,start,end,duration_ms,pid,uid,user,comm,destination,host,rule,verdict,"
                              "chain,hop_count,states,records_sizes,context_sizes,bytes_up,bytes_down,reason,"
                              "protocol,datagrams_up,datagrams_down\r\n";
    QVERIFY2(raw.startsWith(header), raw.left(200).constData());
    QVERIFY(raw.endsWith("\r\n"));
    int records = 0;
    bool quoted = false;
    for (qsizetype i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && c == '\r') {
            QVERIFY2(i + 1 < raw.size() && raw[i + 1] == '\n', "bare CR outside quotes");
            ++records, ++i;
        } else if (!quoted && c == '\n')
            QFAIL("bare LF outside quotes");
    }
    QVERIFY(!quoted);
    QCOMPARE(records, int(flows.size()) + 1);
    QVERIFY(raw.contains("\"evil,\"\"comm\"\"\r\nx\""));
    QVERIFY(raw.contains(",'=cmd|' /C calc'!A0,"));
    QVERIFY(raw.contains(",\"cr\ronly\","));

    QString why;
    std::optional<json> parsed = readWithPython("csv", path, &why);
    QVERIFY2(parsed, qPrintable(why));
    std::vector<std::string> headerNames;
    for (const QByteArray& name : header.trimmed().split(','))
        headerNames.push_back(name.toStdString());
    QCOMPARE((*parsed)["header"].get<std::vector<std::string>>(), headerNames);
    const json& rows = (*parsed)["rows"];
    QCOMPARE(rows.size(), flows.size());
    for (size_t n = 0; n < flows.size(); ++n) {
        const Flow& f = flows[n];
        std::map<std::string, std::string> cell;
        for (size_t i = 0; i < headerNames.size(); ++i)
            cell[headerNames[i]] = rows[n].at(i).get<std::string>();
        QCOMPARE(rows[n].size(), headerNames.size());
        QCOMPARE(cell["flow_id"], std::to_string(f.flowId));
        QCOMPARE(QString::fromStdString(cell["start"]), isoMs(f.startNs));
        QCOMPARE(QString::fromStdString(cell["end"]), isoMs(f.endNs));
        if (f.endNs)
            QCOMPARE(std::stod(cell["duration_ms"]), double(f.endNs - f.startNs) / 1e6);
        else
            QCOMPARE(cell["duration_ms"], std::string());
        QCOMPARE(cell["pid"], std::to_string(f.pid));
        QCOMPARE(cell["uid"], std::to_string(f.uid));
        QCOMPARE(cell["user"], guarded(f.user));
        QCOMPARE(cell["comm"], guarded(clean(f.comm)));
        QCOMPARE(cell["destination"], guarded(f.destination));
        QCOMPARE(cell["host"], guarded(f.host));
        QCOMPARE(cell["rule"], guarded(f.rule));
        QCOMPARE(cell["verdict"], guarded(f.verdict));
        QCOMPARE(cell["chain"], guarded(f.chainText()));
        QCOMPARE(cell["hop_count"], std::to_string(f.hops.size()));
        QCOMPARE(cell["states"], joinHops(f, [](const Hop& h) { return std::string(kStateNames[h.state]); }));
        QCOMPARE(cell["records_sizes"], joinHops(f, [](const Hop& h) { return std::to_string(h.recordsSize); }));
        QCOMPARE(cell["context_sizes"], joinHops(f, [](const Hop& h) { return std::to_string(h.contextSize); }));
        QCOMPARE(cell["bytes_up"], std::to_string(f.bytesUp));
        QCOMPARE(cell["bytes_down"], std::to_string(f.bytesDown));
        QCOMPARE(cell["reason"], std::string(endReasonName(f.reason)));
        // Datagram counts for UDP; for TCP nothing, not 0.
        const bool udp = f.protocol == IPPROTO_UDP;
        QCOMPARE(cell["protocol"], std::string(udp ? "udp" : "tcp"));
        QCOMPARE(cell["datagrams_up"], udp ? std::to_string(f.datagramsUp) : std::string());
        QCOMPARE(cell["datagrams_down"], udp ? std::to_string(f.datagramsDown) : std::string());
    }
    QCOMPARE(rows[4].at(20).get<std::string>(), std::string("udp"));
    QCOMPARE(rows[4].at(21).get<std::string>(), std::string("3"));
    QCOMPARE(rows[4].at(22).get<std::string>(), std::string("2"));
    QCOMPARE(rows[0].at(21).get<std::string>(), std::string());
    // The guard is what spreadsheets see: the cells that began like a formula no longer do.
    QCOMPARE(rows[1].at(6).get<std::string>(), std::string("'=cmd|' /C calc'!A0"));
    QCOMPARE(rows[2].at(10).get<std::string>(), std::string("'+plus"));
    QCOMPARE(rows[2].at(11).get<std::string>(), std::string("'-minus"));
    QCOMPARE(rows[3].at(6).get<std::string>(), std::string("'@at"));
    QCOMPARE(rows[4].at(9).get<std::string>(), std::string("'\tTabbed \"q\" host"));
    QCOMPARE(rows[1].at(7).get<std::string>(), std::string("evil,\"comm\"\r\nx"));
}

// A UDP flow's datagram cells hold a count only where a relay of ours counted: 0 is a count (a
// relayed flow that carried nothing yet), empty is none (direct, blocked, external proxies only).
void TestReport::csvDatagramsOnlyWhereCounted()
{
    auto hop = [](uint32_t id, const char* name, bool external) {
        Hop h;
        h.redirectorId = id, h.redirector = name, h.external = external;
        return h;
    };
    std::vector<Flow> flows(4);
    for (size_t i = 0; i < flows.size(); ++i) {
        flows[i].flowId = i + 1, flows[i].startNs = kT0, flows[i].protocol = IPPROTO_UDP;
        flows[i].destination = "10.0.0.53:53", flows[i].reason = EndReason::Idle;
    }
    flows[0].verdict = "redirect", flows[0].hops = {hop(1, "DNS inspector", false), hop(0, "", false)};
    flows[1].verdict = "direct";
    flows[2].verdict = "block", flows[2].rule = "no-quic";
    flows[3].verdict = "redirect", flows[3].hops = {hop(7, "vendor proxy", true), hop(0, "", false)};
    const QString path = dir_.filePath("udp.csv");
    QVERIFY(writeFile(path, ReportFormat::Csv, flows));
    QString why;
    std::optional<json> parsed = readWithPython("csv", path, &why);
    QVERIFY2(parsed, qPrintable(why));
    const json& rows = (*parsed)["rows"];
    QCOMPARE(rows.size(), size_t(4));
    const std::pair<const char*, const char*> expected[] = {{"0", "0"}, {"", ""}, {"", ""}, {"", ""}};
    for (size_t n = 0; n < rows.size(); ++n) {
        QCOMPARE(rows[n].at(20).get<std::string>(), std::string("udp"));
        QCOMPARE(rows[n].at(21).get<std::string>(), std::string(expected[n].first));
        QCOMPARE(rows[n].at(22).get<std::string>(), std::string(expected[n].second));
    }
}

void TestReport::jsonReadBackByNlohmannAndPython()
{
    const std::vector<Flow> flows = sampleFlows();
    const QString path = dir_.filePath("flows.json");
    QVERIFY(writeFile(path, ReportFormat::Json, flows, {"", 0, kT0 + 60 * kSecond}));
    const QByteArray raw = readAll(path);
    json report = json::parse(raw.toStdString(), nullptr, false);
    QVERIFY2(!report.is_discarded(), "nlohmann could not parse the JSON report");

    COMPARE_JSON(report["schema"], json("redirect-console.report/1"));
    COMPARE_JSON(report["generated"], json(isoMs(kT0 + 100 * kSecond).toStdString()));
    COMPARE_JSON(report["generator"], json("tst_report 1.0"));
    COMPARE_JSON(report["host"], json("host&<'\">"));
    COMPARE_JSON(report["scope"]["filter"], json(""));
    COMPARE_JSON(report["scope"]["from"], json(nullptr));
    COMPARE_JSON(report["scope"]["to"], json(isoMs(kT0 + 60 * kSecond).toStdString()));
    COMPARE_JSON(report["scope"]["text"], json("<b>scope</b> & more"));
    const json& totals = report["totals"];
    COMPARE_JSON(totals["flows"], json(6));
    uint64_t up = 0, down = 0;
    for (const Flow& f : flows)
        up += f.bytesUp, down += f.bytesDown;
    QCOMPARE(totals["bytes_up"].get<uint64_t>(), up);
    QCOMPARE(totals["bytes_down"].get<uint64_t>(), down);
    const json reasons = {{"open", 1}, {"closed", 1}, {"reset", 1}, {"refused", 1}, {"timeout", 1},
                          {"unreachable", 0}, {"hop_cap", 1}, {"no_records", 0}, {"idle", 0},
                          {"error", 0}};
    COMPARE_JSON(totals["by_reason"], reasons);
    QCOMPARE(report["flows"].size(), flows.size());
    for (size_t i = 0; i < flows.size(); ++i)
        COMPARE_JSON(report["flows"][i], flowToJson(flows[i]));
    QVERIFY(raw.indexOf("\"totals\"") < raw.indexOf("\"flows\":["));  // summary first, for readers

    QString why;
    std::optional<json> python = readWithPython("json", path, &why);
    QVERIFY2(python, qPrintable(why));
    COMPARE_JSON(*python, report);
    QCOMPARE((*python)["flows"][5]["flow_id"].get<uint64_t>(), kBigId);
}

void TestReport::htmlInChromium()
{
    const std::vector<Flow> flows = sampleFlows();
    const QString path = dir_.filePath("flows.html");
    QVERIFY(writeFile(path, ReportFormat::Html, flows, {"-comm:nobody", 0, 0}));
    const QByteArray raw = readAll(path);
    // Self-contained: nothing that loads another resource.
    for (const char* external : {"<link", " src=", " href=", "url(", "@import", "http:", "https:"})
        QVERIFY2(!raw.contains(external), external);
    QCOMPARE(raw.count("<script"), qsizetype(1));
    QVERIFY(raw.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    QVERIFY(raw.contains("&lt;b&gt;scope&lt;/b&gt; &amp; more"));
    QVERIFY(raw.contains("host&amp;&lt;&#39;&quot;&gt;"));
    QVERIFY(raw.contains("title=\"1099511627776 bytes\">1.0 TiB<"));
    QVERIFY(raw.contains("title=\"567890 bytes\">555 KiB<"));

    Run run = renderInChromium(path);
    QVERIFY2(run.finished && run.exitCode == 0, run.err.right(2000).constData());
    const QString dom = QString::fromUtf8(run.out);
    QVERIFY2(consoleErrors(run.err).isEmpty(), consoleErrors(run.err).constData());
    QVERIFY2(dom.contains("id=\"flows\""), qPrintable(dom.left(2000)));

    // One row per flow, each led by its flow id.
    const qsizetype table = dom.indexOf("id=\"flows\"");
    const QString flowTable = dom.mid(table, dom.indexOf("</table>", table) - table);
    QCOMPARE(flowTable.count("<tr"), qsizetype(flows.size()) + 1);
    for (const Flow& f : flows)
        QVERIFY2(flowTable.contains("<tr><td class=\"num\">" + QString::number(f.flowId) + "</td>"),
                 qPrintable(QString::number(f.flowId)));
    // The script text stayed text: exactly our one script element exists.
    QCOMPARE(dom.count("<script"), qsizetype(1));
    QVERIFY(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    QVERIFY(!dom.contains("<b>scope</b>"));
    QVERIFY(dom.contains("host&amp;&lt;'\"&gt;"));
    QVERIFY(dom.contains("bøb ünïcödé 日本"));
    QVERIFY(dom.contains(QString::fromUtf8(kBadUtf8Clean)));
    QVERIFY(dom.contains("evil,\"comm\""));
    QVERIFY(dom.contains("app -&gt; Web inspector -&gt; DLP agent -&gt; 93.184.216.34:443"));
    for (const char* section : {"Totals", "By end reason", "Top destinations", "Top processes", "Chains", "Flows"})
        QVERIFY2(dom.contains(QString("<h2>") + section + "</h2>"), section);
    QVERIFY(dom.contains("<code>-comm:nobody</code>"));
    // Chains without their destinations, with counts; destinations with theirs.
    QVERIFY(dom.contains("<td>app -&gt; Web inspector -&gt; DLP agent</td><td class=\"num\">1</td>"));
    QVERIFY(dom.contains("<td>app -&gt; DLP agent</td><td class=\"num\">1</td>"));
    QVERIFY(dom.contains("<td>app</td><td class=\"num\">1</td>"));
    QVERIFY(dom.contains("<td>10.0.0.1:443</td><td class=\"num\">1</td>"));
    // The last columns: protocol and datagrams, empty for TCP.
    QVERIFY(flowTable.contains("<td>timeout</td><td>udp</td><td class=\"num\">3</td><td class=\"num\">2</td></tr>"));
    QVERIFY(flowTable.contains("<td>closed</td><td>tcp</td><td class=\"num\"></td><td class=\"num\"></td></tr>"));
}

void TestReport::htmlSortScriptRuns()
{
    const QString path = dir_.filePath("sorted.html");
    QVERIFY(writeFile(path, ReportFormat::Html, sampleFlows()));
    QByteArray html = readAll(path);
    // Click headers like a user would, then leave what the table shows in attributes.
    const QByteArray probe = R"(<script>
(function () {
  var t = document.getElementById('flows'), heads = t.tHead.rows[0].cells;
  function column(name) { for (var i = 0; i < heads.length; i++) if (heads[i].textContent === name) return heads[i]; }
  function order() { return Array.prototype.map.call(t.tBodies[0].rows, function (r) { return r.cells[0].textContent; }).join(' '); }
  column('bytes_down').click(); column('bytes_down').click();
  document.body.setAttribute('data-by-bytes-down', order() + ' ' + column('bytes_down').getAttribute('aria-sort'));
  column('comm').click();
  document.body.setAttribute('data-by-comm', order());
  document.body.setAttribute('data-align', getComputedStyle(t.tBodies[0].rows[0].cells[0]).textAlign + ' ' +
                             getComputedStyle(t.tBodies[0].rows[0].cells[6]).textAlign);
})();
</script>
)";
    const qsizetype body = html.lastIndexOf("</body>");
    QVERIFY(body > 0);
    html.insert(body, probe);
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::Truncate));
    file.write(html);
    file.close();

    Run run = renderInChromium(path);
    QVERIFY2(run.finished && run.exitCode == 0, run.err.right(2000).constData());
    const QString dom = QString::fromUtf8(run.out);
    QVERIFY2(consoleErrors(run.err).isEmpty(), consoleErrors(run.err).constData());
    // Descending bytes down; equal ones (flows 2 and 5, 0 bytes) keep their order.
    QVERIFY2(dom.contains("data-by-bytes-down=\"1 3 4 18446744073709551600 2 5 descending\""), qPrintable(dom.left(600)));
    QVERIFY2(dom.contains("data-by-comm=\"18446744073709551600 1 2 3 4 5\""), qPrintable(dom.left(600)));
    QVERIFY2(dom.contains("data-align=\"right left\""), qPrintable(dom.left(600)));
}

void TestReport::chromiumLogCatchesScriptErrors()
{
    // The "no Uncaught / CONSOLE" checks above can fail: a throwing page is caught.
    const QString path = dir_.filePath("throws.html");
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write("<!DOCTYPE html><html><body><p>x</p><script>null.report;</script></body></html>");
    file.close();
    Run run = renderInChromium(path);
    QVERIFY(run.finished);
    QVERIFY2(consoleErrors(run.err).contains("Uncaught TypeError"), run.err.right(2000).constData());
}

QTEST_APPLESS_MAIN(TestReport)
#include "tst_report.moc"

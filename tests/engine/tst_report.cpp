// Reports over the flow table: every format read back by an independent
// reader (Python's csv and json modules, nlohmann, headless Chromium), flows
// with hostile strings, filter and time-range scoping, progress and
// cancellation, and 100,000 flows written without a second copy in memory.
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>

#include <malloc.h>
#ifdef __SANITIZE_ADDRESS__
// ASan's runtime exports it; g++ ships no <sanitizer/allocator_interface.h>.
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

#include <QDateTime>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>
#include <QUrl>

#include <nlohmann/json.hpp>

#include "report.h"

using namespace redirect::engine;
using nlohmann::json;

// QCOMPARE cannot take json (its implicit conversions trip Qt's overloads).
#define COMPARE_JSON(actual, expected)                                                                   \
    do {                                                                                                 \
        const json actual_ = (actual), expected_ = (expected);                                           \
        QVERIFY2(actual_ == expected_, qPrintable(QString::fromStdString(                                \
                                           "got " + actual_.dump() + ", expected " + expected_.dump()))); \
    } while (false)

namespace {

constexpr int64_t kT0 = 1'700'000'000'123'456'789;  // 2023-11-14T22:13:20.123Z
constexpr int64_t kSecond = 1'000'000'000;
constexpr uint64_t kBigId = 18'446'744'073'709'551'600ull;  // above 2^53: exact in every format?
constexpr char kScriptHost[] = "<script>alert(1)</script>";
constexpr char kBadUtf8Comm[] = "bad\xff\xfe|\xe6\x97";        // two bad bytes, a truncated sequence
constexpr char kBadUtf8Clean[] = "bad\uFFFD\uFFFD|\uFFFD";
constexpr uint64_t kTiB = 1ull << 40;

Hop makeHop(uint32_t id, const char* name, uint8_t state, uint32_t recordsSize, uint32_t contextSize)
{
    Hop hop;
    hop.redirectorId = id;
    hop.redirector = name;
    hop.state = state;
    hop.recordsSize = recordsSize;
    hop.contextSize = contextSize;
    for (uint32_t i = 0; i < recordsSize; ++i)
        hop.records.push_back(uint8_t(i * 7 + id));
    for (uint32_t i = 0; i < contextSize; ++i)
        hop.context.push_back(uint8_t(255 - i));
    return hop;
}

/// Six flows with every kind of hostile text, open and closed, zero to three hops.
std::vector<Flow> sampleFlows()
{
    std::vector<Flow> flows(6);
    Flow& f1 = flows[0];
    f1.flowId = 1, f1.startNs = kT0, f1.endNs = kT0 + 1500 * 1'000'000, f1.pid = 4242, f1.uid = 1000;
    f1.comm = "curl", f1.user = "alice", f1.cgroupId = 77, f1.destination = "93.184.216.34:443";
    f1.host = "example.com", f1.rule = "web", f1.verdict = "redirect";
    f1.hops = {makeHop(1, "Web inspector", 0, 24, 64), makeHop(2, "DLP agent", 2, 32, 64), makeHop(0, "", 0, 0, 0)};
    f1.hops[0].connectMs = 1.25, f1.hops[0].startNs = kT0 + 1'000'000, f1.hops[0].endNs = kT0 + 1400 * 1'000'000;
    f1.hops[0].bytesUp = 1234, f1.hops[0].bytesDown = 567890, f1.hops[0].reason = EndReason::Closed;
    f1.hops[1].connectMs = 3.5;
    f1.bytesUp = 1234, f1.bytesDown = 567890, f1.reason = EndReason::Closed;

    Flow& f2 = flows[1];
    f2.flowId = 2, f2.startNs = kT0 + 2 * kSecond, f2.endNs = kT0 + 2 * kSecond + 100'000'000, f2.pid = 100;
    f2.comm = "evil,\"comm\"\r\nx", f2.user = "=cmd|' /C calc'!A0", f2.destination = "[2001:db8::1]:80";
    f2.host = kScriptHost, f2.rule = "r,1", f2.verdict = "redirect";
    f2.hops = {makeHop(1, "Web inspector", 0, 24, 64)};
    f2.reason = EndReason::Refused;

    Flow& f3 = flows[2];  // still open
    f3.flowId = 3, f3.startNs = kT0 + 5 * kSecond, f3.pid = 5555, f3.uid = 1001;
    f3.comm = "firefox", f3.user = "bøb ünïcödé 日本", f3.destination = "10.0.0.1:8080";
    f3.host = "ünïcode.example", f3.rule = "+plus", f3.verdict = "-minus";
    f3.hops = {makeHop(7, "Vendor X proxy", 0, 24, 0)};
    f3.hops[0].external = true, f3.hops[0].recordsMissing = true;
    f3.bytesUp = 10, f3.bytesDown = 20;

    Flow& f4 = flows[3];  // bypassed: no hops
    f4.flowId = 4, f4.startNs = kT0 + 10 * kSecond, f4.endNs = kT0 + 20 * kSecond, f4.pid = 22, f4.uid = 1000;
    f4.comm = "ssh", f4.user = "@at", f4.destination = "10.0.0.2:22", f4.host = "cr\ronly", f4.rule = "no-ssh";
    f4.verdict = "bypass";
    f4.bytesUp = 5, f4.bytesDown = 6, f4.reason = EndReason::Reset;

    Flow& f5 = flows[4];
    f5.flowId = 5, f5.startNs = kT0 + 30 * kSecond, f5.endNs = kT0 + 35 * kSecond, f5.pid = 4243, f5.uid = 1000;
    f5.comm = "wget", f5.user = "alice", f5.destination = "10.0.0.1:443", f5.host = "\tTabbed \"q\" host";
    f5.rule = "curl-dlp", f5.verdict = "redirect";
    f5.hops = {makeHop(2, "DLP agent", 0, 24, 64), makeHop(0, "", 0, 0, 0)};
    f5.bytesUp = 1, f5.reason = EndReason::Timeout;

    Flow& f6 = flows[5];  // at the hop cap, with bytes that are not UTF-8
    f6.flowId = kBigId, f6.startNs = kT0 + 40 * kSecond, f6.endNs = kT0 + 41 * kSecond, f6.pid = 6, f6.uid = 2000;
    f6.comm = kBadUtf8Comm, f6.user = "carol", f6.destination = "10.0.0.3:443", f6.rule = "web";
    f6.verdict = "redirect";
    f6.hops = {makeHop(1, "Web inspector", 0, 24, 64), makeHop(2, "DLP agent", 2, 32, 64),
               makeHop(1, "Web inspector", 3, 40, 64)};
    f6.bytesUp = kTiB, f6.bytesDown = 3, f6.reason = EndReason::HopCap;
    return flows;
}

ReportMeta sampleMeta()
{
    return {"tst_report 1.0", kT0 + 100 * kSecond, "<b>scope</b> & more", "host&<'\">"};
}

QString isoMs(int64_t ns)
{
    if (ns == 0)
        return {};
    return QDateTime::fromMSecsSinceEpoch(ns / 1'000'000, Qt::UTC).toString(Qt::ISODateWithMs);
}

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

bool writeFile(const QString& path, ReportFormat format, const std::vector<Flow>& flows,
               const ReportScope& scope = {}, const ReportMeta& meta = sampleMeta())
{
    std::ofstream out(path.toStdString(), std::ios::binary);
    return writeReport(out, format, flows, scope, meta);
}

QByteArray readAll(const QString& path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

/// Counts what is written and keeps nothing.
class CountingBuffer : public std::streambuf {
public:
    uint64_t bytes = 0;

protected:
    std::streamsize xsputn(const char*, std::streamsize n) override
    {
        bytes += uint64_t(n);
        return n;
    }
    int overflow(int c) override
    {
        if (c != traits_type::eof())
            ++bytes;
        return traits_type::not_eof(c);
    }
};

size_t heapInUse()
{
#ifdef __SANITIZE_ADDRESS__
    // ASan replaces malloc: glibc's mallinfo2() sees none of the heap; ASan's allocator counts it.
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
#endif
}

std::vector<Flow> manyFlows(size_t count)
{
    std::vector<Flow> flows(count);
    for (size_t i = 0; i < count; ++i) {
        Flow& flow = flows[i];
        flow.flowId = i + 1;
        flow.startNs = kT0 + int64_t(i) * 1'000'000;
        flow.endNs = i % 10 == 0 ? 0 : flow.startNs + 250'000'000;
        flow.pid = uint32_t(1000 + i % 300);
        flow.uid = 1000;
        flow.comm = "proc" + std::to_string(i % 50);
        flow.user = "alice";
        flow.destination = "10.1." + std::to_string(i % 5000 / 250) + "." + std::to_string(i % 250) + ":443";
        flow.host = "host" + std::to_string(i % 5000) + ".example";
        flow.rule = "web";
        flow.verdict = "redirect";
        flow.hops = {makeHop(1, "Web inspector", 0, 24, 64), makeHop(2, "DLP agent", 2, 32, 64)};
        flow.bytesUp = i * 13;
        flow.bytesDown = i * 1000;
        flow.reason = flow.endNs ? EndReason::Closed : EndReason::Open;
    }
    return flows;
}

std::vector<uint64_t> idsOf(const json& report)
{
    std::vector<uint64_t> ids;
    for (const json& flow : report.at("flows"))
        ids.push_back(flow.at("flow_id").get<uint64_t>());
    return ids;
}

}  // namespace

Q_DECLARE_METATYPE(ReportFormat)
Q_DECLARE_METATYPE(std::optional<ReportFormat>)
Q_DECLARE_METATYPE(std::vector<uint64_t>)

class TestReport : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void formatForPath_data();
    void formatForPath();
    void rfc3339();
    void filter_data();
    void filter();
    void filterErrors_data();
    void filterErrors();
    void timeRange_data();
    void timeRange();
    void flowJsonSchema();
    void csvReadBackByPython();
    void jsonReadBackByNlohmannAndPython();
    void htmlInChromium();
    void htmlSortScriptRuns();
    void chromiumLogCatchesScriptErrors();
    void progressAndCancel_data();
    void progressAndCancel();
    void failedStream_data();
    void failedStream();
    void badFilterThrows();
    void hundredThousandFlows();

private:
    QTemporaryDir dir_;
};

void TestReport::initTestCase()
{
    QVERIFY2(dir_.isValid(), "no temporary directory");
    QVERIFY2(QFileInfo(PYTHON3_EXECUTABLE).isExecutable(), "python3 not found at configure time: " PYTHON3_EXECUTABLE);
    QVERIFY2(QFileInfo(CHROMIUM_EXECUTABLE).isExecutable(), "chromium not found at configure time: " CHROMIUM_EXECUTABLE);
}

void TestReport::formatForPath_data()
{
    QTest::addColumn<QString>("path");
    QTest::addColumn<std::optional<ReportFormat>>("format");
    QTest::newRow("csv") << "/tmp/flows.csv" << std::optional(ReportFormat::Csv);
    QTest::newRow("CSV upper") << "FLOWS.CSV" << std::optional(ReportFormat::Csv);
    QTest::newRow("json mixed") << "r.Json" << std::optional(ReportFormat::Json);
    QTest::newRow("html") << "r.html" << std::optional(ReportFormat::Html);
    QTest::newRow("htm") << "r.HTM" << std::optional(ReportFormat::Html);
    QTest::newRow("txt") << "r.txt" << std::optional<ReportFormat>();
    QTest::newRow("no dot") << "csv" << std::optional<ReportFormat>();
    QTest::newRow("gz") << "r.csv.gz" << std::optional<ReportFormat>();
    QTest::newRow("empty") << "" << std::optional<ReportFormat>();
}

void TestReport::formatForPath()
{
    QFETCH(QString, path);
    QFETCH(std::optional<ReportFormat>, format);
    QVERIFY(reportFormatForPath(path.toStdString()) == format);
}

void TestReport::rfc3339()
{
    QCOMPARE(rfc3339Utc(0), std::string());
    QCOMPARE(rfc3339Utc(1), std::string("1970-01-01T00:00:00.000Z"));
    QCOMPARE(rfc3339Utc(kT0), std::string("2023-11-14T22:13:20.123Z"));
    QCOMPARE(rfc3339Utc(kT0 + 999'999), std::string("2023-11-14T22:13:20.124Z"));
    QCOMPARE(rfc3339Utc(-1), std::string("1969-12-31T23:59:59.999Z"));
    QCOMPARE(QString::fromStdString(rfc3339Utc(kT0 + 41 * kSecond)), isoMs(kT0 + 41 * kSecond));
}

void TestReport::filter_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<std::vector<uint64_t>>("ids");
    using Ids = std::vector<uint64_t>;
    const Ids all = {1, 2, 3, 4, 5, kBigId};
    QTest::newRow("empty") << "" << all;
    QTest::newRow("blanks") << "  \t " << all;
    QTest::newRow("bare comm or rule") << "curl" << Ids{1, 5};
    QTest::newRow("bare upper case") << "CURL" << Ids{1, 5};
    QTest::newRow("comm") << "comm:curl" << Ids{1};
    QTest::newRow("not comm") << "-comm:curl" << Ids{2, 3, 4, 5, kBigId};
    QTest::newRow("dest") << "dest:10.0.0.1" << Ids{3, 5};
    QTest::newRow("destination with port") << "destination:10.0.0.1:443" << Ids{5};
    QTest::newRow("reason") << "reason:refused" << Ids{2};
    QTest::newRow("not chain") << "-chain:dlp" << Ids{2, 3, 4};
    QTest::newRow("quoted words") << "\"DLP agent\"" << Ids{1, 5, kBigId};
    QTest::newRow("not quoted words") << "-\"DLP agent\"" << Ids{2, 3, 4};
    QTest::newRow("quoted miss") << "\"two words\"" << Ids{};
    QTest::newRow("pid exact") << "pid:4242" << Ids{1};
    QTest::newRow("pid not a prefix") << "pid:424" << Ids{};
    QTest::newRow("bare pid substring") << "424" << Ids{1, 5};
    QTest::newRow("uid") << "uid:1000" << Ids{1, 4, 5};
    QTest::newRow("user any case") << "user:ALICE" << Ids{1, 5};
    QTest::newRow("redirector name") << "redirector:vendor" << Ids{3};
    QTest::newRow("redirector id") << "redirector:2" << Ids{1, 5, kBigId};
    QTest::newRow("direct leg is no redirector") << "redirector:0" << Ids{};
    QTest::newRow("flow") << "flow:1" << Ids{1};
    QTest::newRow("flow big") << "flow:18446744073709551600" << Ids{kBigId};
    QTest::newRow("flow hex") << "flow:0xFFFFFFFFFFFFFFF0" << Ids{kBigId};
    QTest::newRow("host markup") << "host:<script>" << Ids{2};
    QTest::newRow("utf-8") << "日本" << Ids{3};
    QTest::newRow("value with dash") << "verdict:-minus" << Ids{3};
    QTest::newRow("and") << "rule:web comm:curl" << Ids{1};
    QTest::newRow("and not") << "alice -wget" << Ids{1};
    QTest::newRow("reason name") << "open" << Ids{3};
    QTest::newRow("lone dash is text") << "-" << all;  // every chain has " -> "
    QTest::newRow("ipv6 is text") << "[2001:db8::1]:80" << Ids{2};
    QTest::newRow("ipv4 with port is text") << "10.0.0.2:22" << Ids{4};
    QTest::newRow("field name any case") << "Host:EXAMPLE" << Ids{1, 3};
    QTest::newRow("quoted field value") << "comm:\"evil,\"" << Ids{2};
    QTest::newRow("bad utf-8 comm") << "comm:bad" << Ids{kBigId};
    QTest::newRow("hop cap") << "reason:hop_cap" << Ids{kBigId};
}

void TestReport::filter()
{
    QFETCH(QString, text);
    QFETCH(std::vector<uint64_t>, ids);
    std::string error;
    std::optional<FlowFilter> filter = FlowFilter::parse(text.toStdString(), &error);
    QVERIFY2(filter, error.c_str());
    std::vector<uint64_t> matched;
    for (const Flow& flow : sampleFlows())
        if (filter->matches(flow))
            matched.push_back(flow.flowId);
    QCOMPARE(matched, ids);
}

void TestReport::filterErrors_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("mentions");
    QTest::newRow("unknown field") << "foo:bar" << "foo";
    QTest::newRow("unknown among good") << "curl -bogus:x" << "bogus";
    QTest::newRow("host:port needs quotes") << "localhost:8080" << "quote";
    QTest::newRow("pid text") << "pid:abc" << "number";
    QTest::newRow("pid empty") << "pid:" << "number";
    QTest::newRow("uid too large") << "uid:99999999999" << "number";
    QTest::newRow("flow negative") << "flow:-1" << "number";
    QTest::newRow("open quote") << "\"unterminated" << "quote";
}

void TestReport::filterErrors()
{
    QFETCH(QString, text);
    QFETCH(QString, mentions);
    std::string error;
    QVERIFY(!FlowFilter::parse(text.toStdString(), &error));
    QVERIFY2(QString::fromStdString(error).contains(mentions), error.c_str());
    QVERIFY(!FlowFilter::parse(text.toStdString(), nullptr));  // no error pointer: no crash
}

void TestReport::timeRange_data()
{
    QTest::addColumn<QString>("filter");
    QTest::addColumn<int64_t>("from");
    QTest::addColumn<int64_t>("to");
    QTest::addColumn<std::vector<uint64_t>>("ids");
    using Ids = std::vector<uint64_t>;
    QTest::newRow("unbounded") << "" << int64_t(0) << int64_t(0) << Ids{1, 2, 3, 4, 5, kBigId};
    QTest::newRow("from only, open flow runs on") << "" << kT0 + 3 * kSecond << int64_t(0) << Ids{3, 4, 5, kBigId};
    QTest::newRow("to only") << "" << int64_t(0) << kT0 + kSecond << Ids{1};
    QTest::newRow("bounds inclusive") << "" << kT0 + 1500 * 1'000'000 << kT0 + 2 * kSecond << Ids{1, 2};
    QTest::newRow("gap holds the open flow only") << "" << kT0 + 21 * kSecond << kT0 + 29 * kSecond << Ids{3};
    QTest::newRow("after everything") << "" << kT0 + 100 * kSecond << int64_t(0) << Ids{3};
    QTest::newRow("inside a long flow") << "" << kT0 + 12 * kSecond << kT0 + 13 * kSecond << Ids{3, 4};
    QTest::newRow("before everything") << "" << int64_t(0) << kT0 - 1 << Ids{};
    QTest::newRow("filter and range") << "alice" << kT0 + 3 * kSecond << int64_t(0) << Ids{5};
}

void TestReport::timeRange()
{
    QFETCH(QString, filter);
    QFETCH(int64_t, from);
    QFETCH(int64_t, to);
    QFETCH(std::vector<uint64_t>, ids);
    std::ostringstream out;
    QVERIFY(writeReport(out, ReportFormat::Json, sampleFlows(), {filter.toStdString(), from, to}, sampleMeta()));
    json report = json::parse(out.str());
    QCOMPARE(idsOf(report), ids);
    QCOMPARE(report["totals"]["flows"].get<size_t>(), ids.size());
    COMPARE_JSON(report["scope"]["from"], from ? json(isoMs(from).toStdString()) : json(nullptr));
    COMPARE_JSON(report["scope"]["to"], to ? json(isoMs(to).toStdString()) : json(nullptr));
    std::vector<uint64_t> overlapping;
    for (const Flow& flow : sampleFlows())
        if (overlapsTimeRange(flow, from, to) && FlowFilter::parse(filter.toStdString())->matches(flow))
            overlapping.push_back(flow.flowId);
    QCOMPARE(overlapping, ids);
}

void TestReport::flowJsonSchema()
{
    const std::vector<Flow> flows = sampleFlows();
    json f1 = flowToJson(flows[0]);
    std::vector<std::string> keys;
    for (auto& item : f1.items())
        keys.push_back(item.key());
    std::vector<std::string> expected = {"bytes_down", "bytes_up", "cgroup_id", "chain", "comm", "destination",
                                         "duration_ms", "end", "flow_id", "hops", "host", "pid", "reason",
                                         "rule", "start", "uid", "user", "verdict"};
    QCOMPARE(keys, expected);
    COMPARE_JSON(f1["flow_id"], json(1));
    COMPARE_JSON(f1["start"], json("2023-11-14T22:13:20.123Z"));
    COMPARE_JSON(f1["end"], json(isoMs(flows[0].endNs).toStdString()));
    QCOMPARE(f1["duration_ms"].get<double>(), 1500.0);
    COMPARE_JSON(f1["cgroup_id"], json(77));
    COMPARE_JSON(f1["chain"], json("app -> Web inspector -> DLP agent -> 93.184.216.34:443"));
    COMPARE_JSON(f1["reason"], json("closed"));
    QCOMPARE(f1["hops"].size(), size_t(3));
    const json& h0 = f1["hops"][0];
    std::vector<std::string> hopKeys;
    for (auto& item : h0.items())
        hopKeys.push_back(item.key());
    std::vector<std::string> expectedHop = {"bytes_down", "bytes_up", "connect_ms", "context_hex", "context_size",
                                            "end", "external", "reason", "records_hex", "records_missing",
                                            "records_size", "redirector", "redirector_id", "start", "state"};
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
                              "chain,hop_count,states,records_sizes,context_sizes,bytes_up,bytes_down,reason\r\n";
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
    }
    // The guard is what spreadsheets see: the cells that began like a formula no longer do.
    QCOMPARE(rows[1].at(6).get<std::string>(), std::string("'=cmd|' /C calc'!A0"));
    QCOMPARE(rows[2].at(10).get<std::string>(), std::string("'+plus"));
    QCOMPARE(rows[2].at(11).get<std::string>(), std::string("'-minus"));
    QCOMPARE(rows[3].at(6).get<std::string>(), std::string("'@at"));
    QCOMPARE(rows[4].at(9).get<std::string>(), std::string("'\tTabbed \"q\" host"));
    QCOMPARE(rows[1].at(7).get<std::string>(), std::string("evil,\"comm\"\r\nx"));
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
                          {"unreachable", 0}, {"hop_cap", 1}, {"no_records", 0}, {"error", 0}};
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

void TestReport::progressAndCancel_data()
{
    QTest::addColumn<ReportFormat>("format");
    QTest::newRow("csv") << ReportFormat::Csv;
    QTest::newRow("json") << ReportFormat::Json;
    QTest::newRow("html") << ReportFormat::Html;
}

void TestReport::progressAndCancel()
{
    QFETCH(ReportFormat, format);
    const std::vector<Flow> flows = manyFlows(10'500);
    std::vector<std::pair<size_t, size_t>> calls;
    std::ostringstream full;
    QVERIFY(writeReport(full, format, flows, {}, sampleMeta(), [&](size_t done, size_t total) {
        calls.emplace_back(done, total);
        return true;
    }));
    QVERIFY(calls.size() >= 3 && calls.size() <= 10'500 / 1000 + 2);
    QCOMPARE(calls.front(), std::make_pair(size_t(0), size_t(10'500)));
    QCOMPARE(calls.back(), std::make_pair(size_t(10'500), size_t(10'500)));
    for (size_t i = 1; i < calls.size(); ++i) {
        QVERIFY(calls[i].first > calls[i - 1].first);
        QVERIFY(calls[i].first - calls[i - 1].first <= 1000);
    }

    // Cancelled mid-way: false, no further calls, and the output stops short.
    calls.clear();
    std::ostringstream cut;
    QVERIFY(!writeReport(cut, format, flows, {}, sampleMeta(), [&](size_t done, size_t total) {
        calls.emplace_back(done, total);
        return done < 3000;
    }));
    QCOMPARE(calls.back().first, size_t(3000));
    QVERIFY(cut.str().size() < full.str().size() / 2);

    // Cancelled before the first flow.
    std::ostringstream none;
    QVERIFY(!writeReport(none, format, flows, {}, sampleMeta(), [](size_t, size_t) { return false; }));
    QVERIFY(none.str().size() < full.str().size() / 10);

    // A scoped report counts the flows in scope.
    calls.clear();
    std::ostringstream scoped;
    QVERIFY(writeReport(scoped, format, flows, {"comm:proc7"}, sampleMeta(), [&](size_t done, size_t total) {
        calls.emplace_back(done, total);
        return true;
    }));
    QCOMPARE(calls.back(), std::make_pair(size_t(210), size_t(210)));  // one comm in 50
}

void TestReport::failedStream_data() { progressAndCancel_data(); }

void TestReport::failedStream()
{
    QFETCH(ReportFormat, format);
    std::ofstream nowhere("/nonexistent-dir/report.out");
    QVERIFY(!writeReport(nowhere, format, sampleFlows(), {}, sampleMeta()));
    std::ostringstream broken;
    broken.setstate(std::ios::badbit);
    QVERIFY(!writeReport(broken, format, sampleFlows(), {}, sampleMeta()));
    std::ostringstream fine;
    QVERIFY(writeReport(fine, format, sampleFlows(), {}, sampleMeta()));
}

void TestReport::badFilterThrows()
{
    std::ostringstream out;
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument,
                             writeReport(out, ReportFormat::Csv, sampleFlows(), {"nope:1"}, sampleMeta()));
    QVERIFY(out.str().empty());
}

void TestReport::hundredThousandFlows()
{
    constexpr size_t kFlows = 100'000;
    const size_t before = heapInUse();
    const std::vector<Flow> flows = manyFlows(kFlows);
    const size_t flowsHeap = heapInUse() - before;
    qInfo("100,000 flows take %.1f MiB of heap", double(flowsHeap) / (1 << 20));

    for (ReportFormat format : {ReportFormat::Csv, ReportFormat::Json, ReportFormat::Html}) {
        CountingBuffer counter;
        std::ostream out(&counter);
        const size_t start = heapInUse();
        size_t peak = start;
        auto began = std::chrono::steady_clock::now();
        QVERIFY(writeReport(out, format, flows, {}, sampleMeta(), [&](size_t, size_t) {
            peak = std::max(peak, heapInUse());
            return true;
        }));
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
        const char* name = format == ReportFormat::Csv ? "CSV" : format == ReportFormat::Json ? "JSON" : "HTML";
        qInfo("%s: %.1f MiB in %.2f s, heap grew by at most %.1f MiB", name, double(counter.bytes) / (1 << 20),
              seconds, double(peak - start) / (1 << 20));
        QVERIFY(counter.bytes > kFlows * 100);
        // Streaming: the report is written as it goes, so memory stays far below a copy of it.
        QVERIFY2(peak - start < std::min<uint64_t>(flowsHeap / 4, counter.bytes / 4), name);
    }

    // And the big JSON is still one valid document.
    const QString path = dir_.filePath("big.json");
    QVERIFY(writeFile(path, ReportFormat::Json, flows));
    std::ifstream in(path.toStdString());
    json report = json::parse(in, nullptr, false);
    QVERIFY(!report.is_discarded());
    QCOMPARE(report["totals"]["flows"].get<size_t>(), kFlows);
    QCOMPARE(report["flows"].size(), kFlows);
    QCOMPARE(report["totals"]["by_reason"]["open"].get<size_t>(), kFlows / 10);
    QCOMPARE(report["flows"][kFlows - 1]["flow_id"].get<uint64_t>(), uint64_t(kFlows));
}

QTEST_APPLESS_MAIN(TestReport)
#include "tst_report.moc"

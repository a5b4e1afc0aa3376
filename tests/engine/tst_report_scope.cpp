// Which flows a report covers and how it is written: the output format from the file name,
// RFC 3339 times, the flow filter and its errors, time-range scoping, progress and cancellation,
// failed streams, and 100,000 flows written without a second copy in memory.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include <malloc.h>
#ifdef __SANITIZE_ADDRESS__
// ASan's runtime exports it; g++ ships no <sanitizer/allocator_interface.h>.
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

#include <QTemporaryDir>
#include <QTest>

#include "report_fixtures.h"

using namespace redirect::engine;
using namespace report_test;

namespace {

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

class TestReportScope : public QObject {
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
    void badFilterThrows();
    void progressAndCancel_data();
    void progressAndCancel();
    void failedStream_data();
    void failedStream();
    void hundredThousandFlows();

private:
    QTemporaryDir dir_;
};

void TestReportScope::initTestCase() { QVERIFY2(dir_.isValid(), "no temporary directory"); }

void TestReportScope::formatForPath_data()
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

void TestReportScope::formatForPath()
{
    QFETCH(QString, path);
    QFETCH(std::optional<ReportFormat>, format);
    QVERIFY(reportFormatForPath(path.toStdString()) == format);
}

void TestReportScope::rfc3339()
{
    QCOMPARE(rfc3339Utc(0), std::string());
    QCOMPARE(rfc3339Utc(1), std::string("1970-01-01T00:00:00.000Z"));
    QCOMPARE(rfc3339Utc(kT0), std::string("2023-11-14T22:13:20.123Z"));
    QCOMPARE(rfc3339Utc(kT0 + 999'999), std::string("2023-11-14T22:13:20.124Z"));
    QCOMPARE(rfc3339Utc(-1), std::string("1969-12-31T23:59:59.999Z"));
    QCOMPARE(QString::fromStdString(rfc3339Utc(kT0 + 41 * kSecond)), isoMs(kT0 + 41 * kSecond));
}

void TestReportScope::filter_data()
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
    QTest::newRow("protocol udp") << "protocol:udp" << Ids{5};
    QTest::newRow("protocol any case") << "Protocol:TCP" << Ids{1, 2, 3, 4, kBigId};
    QTest::newRow("not udp") << "-protocol:udp" << Ids{1, 2, 3, 4, kBigId};
    QTest::newRow("bare udp") << "udp" << Ids{5};
}

void TestReportScope::filter()
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

void TestReportScope::filterErrors_data()
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
    QTest::newRow("protocol unknown") << "protocol:icmp" << "tcp or udp";
    QTest::newRow("protocol prefix") << "protocol:ud" << "tcp or udp";
    QTest::newRow("protocol empty") << "protocol:" << "tcp or udp";
}

void TestReportScope::filterErrors()
{
    QFETCH(QString, text);
    QFETCH(QString, mentions);
    std::string error;
    QVERIFY(!FlowFilter::parse(text.toStdString(), &error));
    QVERIFY2(QString::fromStdString(error).contains(mentions), error.c_str());
    QVERIFY(!FlowFilter::parse(text.toStdString(), nullptr));  // no error pointer: no crash
}

void TestReportScope::timeRange_data()
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

void TestReportScope::timeRange()
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

void TestReportScope::badFilterThrows()
{
    std::ostringstream out;
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument,
                             writeReport(out, ReportFormat::Csv, sampleFlows(), {"nope:1"}, sampleMeta()));
    QVERIFY(out.str().empty());
}

void TestReportScope::progressAndCancel_data()
{
    QTest::addColumn<ReportFormat>("format");
    QTest::newRow("csv") << ReportFormat::Csv;
    QTest::newRow("json") << ReportFormat::Json;
    QTest::newRow("html") << ReportFormat::Html;
}

void TestReportScope::progressAndCancel()
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

void TestReportScope::failedStream_data() { progressAndCancel_data(); }

void TestReportScope::failedStream()
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

void TestReportScope::hundredThousandFlows()
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

QTEST_APPLESS_MAIN(TestReportScope)
#include "tst_report_scope.moc"

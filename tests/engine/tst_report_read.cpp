// The JSON report read back (engine/report_read.h, the console's "Open report…"): what the engine's
// writer wrote comes back equal, and every kind of bad file gives an error that says what is wrong.
#include <fstream>
#include <sstream>

#include <netinet/in.h>

#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include "report_fixtures.h"
#include "report_read.h"

using namespace redirect::engine;
using namespace report_test;

namespace {

std::string jsonReport(const std::vector<Flow>& flows, const ReportScope& scope = {})
{
    std::ostringstream out;
    writeReport(out, ReportFormat::Json, flows, scope, sampleMeta());
    return out.str();
}

}  // namespace

class TestReportRead : public QObject {
    Q_OBJECT

private slots:
    void roundTrip();
    void olderReportWithoutHopRules();
    void olderReportWithoutUdpFields();
    void roundTripManyFlows();
    void badFiles_data();
    void badFiles();
    void fileErrorsNameThePathAndReason();
};

void TestReportRead::roundTrip()
{
    std::vector<Flow> flows = sampleFlows();
    flows[0].hops[1].rule = "dlp-rule";
    const ReportScope scope{"", kT0, kT0 + 60 * kSecond};
    const ReportReadResult r = readJsonReport(jsonReport(flows, scope));
    QVERIFY2(r.ok(), r.error.c_str());
    QCOMPARE(r.report.flows.size(), flows.size());
    // Equal in the report's own terms: each flow read back writes the same JSON as the original
    // (times at millisecond precision, names as valid UTF-8, blobs as hex).
    for (size_t i = 0; i < flows.size(); ++i)
        COMPARE_JSON(flowToJson(r.report.flows[i]), flowToJson(flows[i]));
    // And field by field where the report is exact.
    const Flow& f1 = r.report.flows[0];
    QCOMPARE(f1.flowId, flows[0].flowId);
    QCOMPARE(f1.startNs, kT0 / 1'000'000 * 1'000'000);
    QCOMPARE(f1.hops.size(), size_t(3));
    QCOMPARE(f1.hops[1].redirector, std::string("DLP agent"));
    QCOMPARE(f1.hops[1].state, flows[0].hops[1].state);
    QCOMPARE(f1.hops[1].rule, std::string("dlp-rule"));
    QVERIFY(f1.hops[0].records == flows[0].hops[0].records);
    QVERIFY(f1.hops[0].context == flows[0].hops[0].context);
    QCOMPARE(f1.hops[0].connectMs, 1.25);
    QCOMPARE(f1.hops[2].connectMs, -1.0);
    QCOMPARE(f1.chainText(), flows[0].chainText());
    QCOMPARE(r.report.flows[2].endNs, int64_t(0));  // still open
    QCOMPARE(r.report.flows[2].reason, EndReason::Open);
    QVERIFY(r.report.flows[2].hops[0].external && r.report.flows[2].hops[0].recordsMissing);
    QCOMPARE(r.report.flows[5].flowId, kBigId);     // above 2^53, exact
    QCOMPARE(r.report.flows[5].bytesUp, kTiB);
    QCOMPARE(r.report.flows[5].comm, std::string(kBadUtf8Clean));
    const Flow& udp = r.report.flows[4];
    QCOMPARE(udp.protocol, uint8_t(IPPROTO_UDP));
    QCOMPARE(udp.datagramsUp, uint64_t(3));
    QCOMPARE(udp.datagramsDown, uint64_t(2));
    QCOMPARE(udp.hops[0].datagramsDown, uint64_t(2));
    QCOMPARE(udp.hops[1].datagramsDown, uint64_t(1));
    QCOMPARE(f1.protocol, uint8_t(IPPROTO_TCP));
    QCOMPARE(r.report.meta.generator, sampleMeta().generator);
    QCOMPARE(r.report.meta.hostname, sampleMeta().hostname);
    QCOMPARE(r.report.meta.scopeText, sampleMeta().scopeText);
    QCOMPARE(r.report.scope.fromNs, kT0 / 1'000'000 * 1'000'000);
    QCOMPARE(r.report.scope.toNs, (kT0 + 60 * kSecond) / 1'000'000 * 1'000'000);
}

// Reports written before each hop carried its rule still open.
void TestReportRead::olderReportWithoutHopRules()
{
    std::string text = jsonReport(sampleFlows());
    size_t removed = 0;
    for (size_t at; (at = text.find(R"("rule":"",)")) != std::string::npos; ++removed)
        text.erase(at, std::string(R"("rule":"",)").size());
    QVERIFY(removed >= 10);
    const ReportReadResult r = readJsonReport(text);
    QVERIFY2(r.ok(), r.error.c_str());
    QCOMPARE(r.report.flows.size(), size_t(6));
    QCOMPARE(r.report.flows[0].hops[0].rule, std::string());
}

// Reports written before UDP have no protocol and no datagram counts: every flow was TCP.
void TestReportRead::olderReportWithoutUdpFields()
{
    const std::string text = jsonReport(sampleFlows());
    // Each `"key":value,` taken out (no std::regex: g++ 12 warns inside it under the sanitizers).
    std::string old = text;
    for (const std::string key : {"\"datagrams_up\":", "\"datagrams_down\":", "\"protocol\":"})
        for (size_t at; (at = old.find(key)) != std::string::npos;)
            old.erase(at, old.find(',', at) + 1 - at);
    QVERIFY(old.find("datagrams") == std::string::npos && old.find("protocol") == std::string::npos);
    QVERIFY(old.size() < text.size());
    const ReportReadResult r = readJsonReport(old);
    QVERIFY2(r.ok(), r.error.c_str());
    QCOMPARE(r.report.flows.size(), size_t(6));
    for (const Flow& flow : r.report.flows) {
        QCOMPARE(flow.protocol, uint8_t(IPPROTO_TCP));
        QCOMPARE(flow.datagramsUp + flow.datagramsDown, uint64_t(0));
        for (const Hop& hop : flow.hops)
            QCOMPARE(hop.datagramsUp + hop.datagramsDown, uint64_t(0));
    }
}

void TestReportRead::roundTripManyFlows()
{
    const std::vector<Flow> flows = manyFlows(5000);
    const std::string text = jsonReport(flows);
    const ReportReadResult r = readJsonReport(text);
    QVERIFY2(r.ok(), r.error.c_str());
    QCOMPARE(r.report.flows.size(), flows.size());
    // Written again, the report is the same text.
    std::ostringstream again;
    writeReport(again, ReportFormat::Json, r.report.flows, {}, sampleMeta());
    QVERIFY(again.str() == text);
}

void TestReportRead::badFiles_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("error");
    const std::string good = jsonReport(sampleFlows());
    auto replaced = [&](const std::string& from, const std::string& to) {
        std::string t = good;
        t.replace(t.find(from), from.size(), to);
        return QByteArray::fromStdString(t);
    };
    QTest::newRow("truncated") << QByteArray::fromStdString(good.substr(0, good.size() / 2))
                               << "truncated: the JSON text ends after";
    QTest::newRow("empty") << QByteArray() << "truncated: the JSON text ends after 0 bytes";
    QTest::newRow("not JSON") << QByteArray("flow_id,start\r\n1,2\r\n") << "not JSON: parse error at line 1, column 2";
    QTest::newRow("HTML") << QByteArray("<!DOCTYPE html><html></html>") << "not JSON: parse error at line 1, column 1";
    QTest::newRow("array") << QByteArray("[1, 2]") << "the report: expected a JSON object, found array";
    QTest::newRow("no schema") << QByteArray(R"({"flows": []})") << "schema: missing: not a Redirect Console report";
    QTest::newRow("other schema") << QByteArray(R"({"schema": "something.else/1"})")
                                  << "schema: \"something.else/1\" is not a Redirect Console report";
    QTest::newRow("wrong version") << replaced("redirect-console.report/1", "redirect-console.report/2")
                                   << "schema: version 2 of the report format; this console reads version 1";
    QTest::newRow("flow id text") << replaced(R"("flow_id":2,)", R"("flow_id":"2",)")
                                  << "flows[1].flow_id: expected a whole number, found string";
    QTest::newRow("negative pid") << replaced(R"("pid":100,)", R"("pid":-100,)")
                                  << "flows[1].pid: expected a whole number, found -100";
    QTest::newRow("bad time") << replaced(R"("start":"2023-11-14T22:13:22.123Z")", R"("start":"yesterday")")
                              << "flows[1].start: expected an RFC 3339 time like";
    QTest::newRow("bad state") << replaced(R"("state":"REDIRECTED_BY_OTHER")", R"("state":"SIDEWAYS")")
                               << "flows[0].hops[1].state: unknown redirect state \"SIDEWAYS\"";
    QTest::newRow("bad hex") << replaced(R"("context_hex":"ff)", R"("context_hex":"zz)")
                             << "flows[0].hops[0].context_hex: expected lower-case hex digits in pairs";
    QTest::newRow("missing field") << replaced(R"(,"verdict":"bypass")", "")
                                   << "flows[3]: missing \"verdict\"";
    QTest::newRow("bad reason") << replaced(R"("reason":"timeout")", R"("reason":"bored")")
                                << "flows[4].reason: unknown end reason \"bored\"";
    QTest::newRow("bad protocol") << replaced(R"("protocol":"udp")", R"("protocol":"icmp")")
                                  << "flows[4].protocol: unknown protocol \"icmp\" (expected \"tcp\" or \"udp\")";
    QTest::newRow("datagrams text") << replaced(R"("datagrams_up":3,)", R"("datagrams_up":"3",)")
                                    << "flows[4].datagrams_up: expected a whole number, found string";
    QTest::newRow("totals") << replaced(R"("totals":{"flows":6)", R"("totals":{"flows":7)")
                            << "totals.flows: does not match the 6 flows in the file";
}

void TestReportRead::badFiles()
{
    QFETCH(QByteArray, text);
    QFETCH(QString, error);
    const ReportReadResult r = readJsonReport(text.toStdString());
    QVERIFY2(!r.ok(), "a bad file was read");
    QVERIFY2(QString::fromStdString(r.error).startsWith(error), r.error.c_str());
    QVERIFY2(r.report.flows.empty(), "a bad file gave flows");
}

void TestReportRead::fileErrorsNameThePathAndReason()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string missing = dir.filePath("missing.json").toStdString();
    ReportReadResult r = readReportFile(missing);
    QCOMPARE(r.error, missing + ": No such file or directory");
    r = readReportFile(dir.path().toStdString());
    QCOMPARE(r.error, dir.path().toStdString() + ": not a regular file");

    const std::string good = dir.filePath("good.json").toStdString();
    std::ofstream(good) << jsonReport(sampleFlows());
    r = readReportFile(good);
    QVERIFY2(r.ok(), r.error.c_str());
    QCOMPARE(r.report.flows.size(), size_t(6));
    const std::string cut = dir.filePath("cut.json").toStdString();
    std::ofstream(cut) << jsonReport(sampleFlows()).substr(0, 100);
    r = readReportFile(cut);
    QVERIFY2(r.error.rfind(cut + ": truncated: ", 0) == 0, r.error.c_str());
}

QTEST_APPLESS_MAIN(TestReportRead)
#include "tst_report_read.moc"

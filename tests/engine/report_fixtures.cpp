#include "report_fixtures.h"

#include <fstream>

#include <netinet/in.h>

#include <QDateTime>

using namespace redirect::engine;

namespace report_test {

namespace {

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

}  // namespace

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

    Flow& f5 = flows[4];  // UDP (QUIC) through one redirector: datagram counts
    f5.flowId = 5, f5.startNs = kT0 + 30 * kSecond, f5.endNs = kT0 + 35 * kSecond, f5.pid = 4243, f5.uid = 1000;
    f5.comm = "wget", f5.user = "alice", f5.destination = "10.0.0.1:443", f5.host = "\tTabbed \"q\" host";
    f5.rule = "curl-dlp", f5.verdict = "redirect";
    f5.hops = {makeHop(2, "DLP agent", 0, 24, 64), makeHop(0, "", 0, 0, 0)};
    f5.bytesUp = 1, f5.reason = EndReason::Timeout;
    f5.protocol = IPPROTO_UDP, f5.datagramsUp = 3, f5.datagramsDown = 2;
    f5.hops[0].datagramsUp = 3, f5.hops[0].datagramsDown = 2, f5.hops[1].datagramsUp = 3, f5.hops[1].datagramsDown = 1;

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

QString isoMs(int64_t ns)
{
    if (ns == 0)
        return {};
    return QDateTime::fromMSecsSinceEpoch(ns / 1'000'000, Qt::UTC).toString(Qt::ISODateWithMs);
}

bool writeFile(const QString& path, ReportFormat format, const std::vector<Flow>& flows,
               const ReportScope& scope, const ReportMeta& meta)
{
    std::ofstream out(path.toStdString(), std::ios::binary);
    return writeReport(out, format, flows, scope, meta);
}

}  // namespace report_test

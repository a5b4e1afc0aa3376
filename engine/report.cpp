#include "report.h"
#include "format.h"
#include "report_writer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <stdexcept>

#include <netinet/in.h>

namespace redirect::engine {

using namespace report_detail;

namespace {

// Not `json`: engine/json.h owns redirect::engine::json.
using Json = nlohmann::json;

// Bytes of the UTF-8 sequence at s[i]. An ill-formed one (overlong, surrogate, > U+10FFFF,
// truncated) sets `valid` false and spans its maximal subpart, which takes one U+FFFD (the
// Unicode practice that Python and browsers follow).
size_t utf8Sequence(std::string_view s, size_t i, bool& valid)
{
    const uint8_t b = uint8_t(s[i]);
    valid = true;
    if (b < 0x80)
        return 1;
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        lo = b == 0xE0 ? 0xA0 : 0x80;
        hi = b == 0xED ? 0x9F : 0xBF;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        lo = b == 0xF0 ? 0x90 : 0x80;
        hi = b == 0xF4 ? 0x8F : 0xBF;
    } else {
        valid = false;
        return 1;
    }
    for (size_t k = 1; k <= need; ++k, lo = 0x80, hi = 0xBF) {
        uint8_t c = i + k < s.size() ? uint8_t(s[i + k]) : 0;
        if (c < lo || c > hi) {
            valid = false;
            return k;
        }
    }
    return need + 1;
}

std::string hexString(const std::vector<uint8_t>& bytes)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (uint8_t b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

Json timeOrNull(int64_t ns) { return ns == 0 ? Json(nullptr) : Json(rfc3339Utc(ns)); }

// Milliseconds rounded to microseconds: exact enough, short in every format.
double roundedMs(double ms) { return std::round(ms * 1000.0) / 1000.0; }

std::optional<double> durationMs(const Flow& flow)
{
    if (flow.startNs == 0 || flow.endNs == 0)
        return std::nullopt;
    return roundedMs(double(flow.endNs - flow.startNs) / 1e6);
}

}  // namespace

namespace report_detail {

bool isValidUtf8(std::string_view s)
{
    bool valid = true;
    for (size_t i = 0; i < s.size() && valid;)
        i += utf8Sequence(s, i, valid);
    return valid;
}

// Names from the kernel and the peek are arbitrary bytes; JSON and HTML need UTF-8.
std::string validUtf8(std::string_view s)
{
    if (isValidUtf8(s))
        return std::string(s);
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        bool valid = true;
        size_t n = utf8Sequence(s, i, valid);
        if (valid)
            out.append(s.substr(i, n));
        else
            out += "\xEF\xBF\xBD";
        i += n;
    }
    return out;
}

}  // namespace report_detail

std::string rfc3339Utc(int64_t ns)
{
    if (ns == 0)
        return {};
    int64_t ms = ns / 1'000'000 - (ns % 1'000'000 < 0 ? 1 : 0);  // floor, also before 1970
    time_t seconds = time_t(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
    int millis = int(ms - int64_t(seconds) * 1000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char text[40];
    size_t n = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(text + n, sizeof(text) - n, ".%03dZ", millis);
    return text;
}

std::optional<ReportFormat> reportFormatForPath(const std::string& path)
{
    std::string lower = lowerCopy(path);
    auto endsWith = [&](std::string_view suffix) { return lower.ends_with(suffix); };
    if (endsWith(".csv")) return ReportFormat::Csv;
    if (endsWith(".json")) return ReportFormat::Json;
    if (endsWith(".html") || endsWith(".htm")) return ReportFormat::Html;
    return std::nullopt;
}

// ---- JSON shape of a flow -----------------------------------------------------------------------

nlohmann::json flowToJson(const Flow& flow)
{
    Json hops = Json::array();
    for (const Hop& hop : flow.hops) {
        hops.push_back({
            {"redirector_id", hop.redirectorId},
            {"redirector", validUtf8(hop.redirector)},
            {"rule", validUtf8(hop.rule)},
            {"external", hop.external},
            {"state", redirectStateName(hop.state)},
            {"records_size", hop.recordsSize},
            {"context_size", hop.contextSize},
            {"records_hex", hexString(hop.records)},
            {"context_hex", hexString(hop.context)},
            {"connect_ms", hop.connectMs >= 0 ? Json(roundedMs(hop.connectMs)) : Json(nullptr)},
            {"bytes_up", hop.bytesUp},
            {"bytes_down", hop.bytesDown},
            {"datagrams_up", hop.datagramsUp},
            {"datagrams_down", hop.datagramsDown},
            {"start", timeOrNull(hop.startNs)},
            {"end", timeOrNull(hop.endNs)},
            {"reason", endReasonName(hop.reason)},
            {"records_missing", hop.recordsMissing},
            {"in_process", hop.inProcess},
        });
    }
    std::optional<double> duration = durationMs(flow);
    Json j = {
        {"flow_id", flow.flowId},
        {"start", timeOrNull(flow.startNs)},
        {"end", timeOrNull(flow.endNs)},
        {"duration_ms", duration ? Json(*duration) : Json(nullptr)},
        {"pid", flow.pid},
        {"uid", flow.uid},
        {"user", validUtf8(flow.user)},
        {"comm", validUtf8(flow.comm)},
        {"cgroup_id", flow.cgroupId},
        {"destination", validUtf8(flow.destination)},
        {"host", validUtf8(flow.host)},
        {"rule", validUtf8(flow.rule)},
        {"verdict", validUtf8(flow.verdict)},
        {"chain", validUtf8(flow.chainText())},
        {"route", validUtf8(flow.routeText())},
        {"hops", std::move(hops)},
        {"bytes_up", flow.bytesUp},
        {"bytes_down", flow.bytesDown},
        {"protocol", protocolName(flow.protocol)},
        {"datagrams_up", flow.datagramsUp},
        {"datagrams_down", flow.datagramsDown},
        {"reason", endReasonName(flow.reason)},
    };
    if (!flow.node.empty())  // a console's export of several nodes; the service's own lines have none
        j["node"] = validUtf8(flow.node);
    return j;
}

// ---- Writers ------------------------------------------------------------------------------------

namespace {

Selection select(const std::vector<Flow>& flows, const ReportScope& scope)
{
    std::string error;
    std::optional<FlowFilter> filter = FlowFilter::parse(scope.filter, &error);
    if (!filter)
        throw std::invalid_argument(error);
    Selection s;
    for (const Flow& flow : flows) {
        if (!overlapsTimeRange(flow, scope.fromNs, scope.toNs) || !filter->matches(flow))
            continue;
        s.flows.push_back(&flow);
        s.bytesUp += flow.bytesUp;
        s.bytesDown += flow.bytesDown;
        ++s.byReason[std::min(size_t(flow.reason), kReasonCount - 1)];
    }
    return s;
}

bool writeCsv(Sink& sink, const Selection& selection)
{
    std::string& out = sink.buffer;
    for (size_t i = 0; i < kColumns.size(); ++i)
        out.append(i ? "," : "").append(kColumns[i].name);
    out += "\r\n";
    Row row;
    for (size_t n = 0; n < selection.flows.size(); ++n) {
        fillRow(*selection.flows[n], row);
        for (size_t i = 0; i < row.size(); ++i) {
            if (i)
                out += ',';
            appendCsvField(out, row[i], kColumns[i].kind == Kind::Text ? CsvField::Text : CsvField::Number);
        }
        out += "\r\n";
        if (!sink.flowDone(n + 1))
            return false;
    }
    return true;
}

bool writeJson(Sink& sink, const Selection& selection, const ReportScope& scope, const ReportMeta& meta)
{
    nlohmann::ordered_json byReason = nlohmann::ordered_json::object();
    for (size_t r = 0; r < kReasonCount; ++r)
        byReason[endReasonName(EndReason(r))] = selection.byReason[r];
    nlohmann::ordered_json head = {
        {"schema", "redirect-console.report/1"},
        {"generated", timeOrNull(meta.generatedNs)},
        {"generator", validUtf8(meta.generator)},
        {"host", validUtf8(meta.hostname)},
        {"scope", {{"filter", validUtf8(scope.filter)}, {"from", timeOrNull(scope.fromNs)},
                   {"to", timeOrNull(scope.toNs)}, {"text", validUtf8(meta.scopeText)}}},
        {"totals", {{"flows", selection.flows.size()}, {"bytes_up", selection.bytesUp},
                    {"bytes_down", selection.bytesDown}, {"by_reason", std::move(byReason)}}},
    };
    // The header object without its closing brace, then the flows one by one.
    std::string& out = sink.buffer;
    out = head.dump();
    out.pop_back();
    out += ",\"flows\":[";
    for (size_t n = 0; n < selection.flows.size(); ++n) {
        out += n ? ",\n" : "\n";
        out += flowToJson(*selection.flows[n]).dump();
        if (!sink.flowDone(n + 1))
            return false;
    }
    out += "\n]}\n";
    return true;
}

}  // namespace

namespace report_detail {

/// One flow as the cells of kColumns: the row of the CSV and of the HTML table.
void fillRow(const Flow& flow, Row& row)
{
    auto joined = [&](std::string& cell, auto part) {
        cell.clear();
        for (const Hop& hop : flow.hops) {
            if (&hop != &flow.hops.front())
                cell += ';';
            cell += part(hop);
        }
    };
    std::optional<double> duration = durationMs(flow);
    row[0] = decimalString(flow.flowId);
    row[1] = rfc3339Utc(flow.startNs);
    row[2] = rfc3339Utc(flow.endNs);
    row[3] = duration ? decimalString(*duration) : std::string();
    row[4] = decimalString(flow.pid);
    row[5] = decimalString(flow.uid);
    row[6] = validUtf8(flow.user);
    row[7] = validUtf8(flow.comm);
    row[8] = validUtf8(flow.destination);
    row[9] = validUtf8(flow.host);
    row[10] = validUtf8(flow.rule);
    row[11] = validUtf8(flow.verdict);
    row[12] = validUtf8(flow.chainText());
    row[13] = decimalString(flow.hops.size());
    joined(row[14], [](const Hop& hop) { return std::string(redirectStateName(hop.state)); });
    joined(row[15], [](const Hop& hop) { return decimalString(hop.recordsSize); });
    joined(row[16], [](const Hop& hop) { return decimalString(hop.contextSize); });
    row[17] = decimalString(flow.bytesUp);
    row[18] = decimalString(flow.bytesDown);
    row[19] = endReasonName(flow.reason);
    row[20] = protocolName(flow.protocol);
    // Empty where nothing counted them (TCP, direct or blocked UDP), as duration_ms for an open
    // flow: no count, not 0.
    const bool counted = flow.datagramsCounted();
    row[21] = counted ? decimalString(flow.datagramsUp) : std::string();
    row[22] = counted ? decimalString(flow.datagramsDown) : std::string();
}

}  // namespace report_detail

bool writeReport(std::ostream& out, ReportFormat format, const std::vector<Flow>& flows,
                 const ReportScope& scope, const ReportMeta& meta, const ReportProgress& progress)
{
    Selection selection = select(flows, scope);
    Sink sink(out, progress, selection.flows.size());
    if (!sink.start())
        return false;
    bool done = false;
    switch (format) {
    case ReportFormat::Csv: done = writeCsv(sink, selection); break;
    case ReportFormat::Json: done = writeJson(sink, selection, scope, meta); break;
    case ReportFormat::Html: done = writeHtml(sink, selection, scope, meta); break;
    }
    return done && sink.finish();
}

}  // namespace redirect::engine

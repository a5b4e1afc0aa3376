// Internal to the report writers (report.cpp, report_filter.cpp, report_html.cpp): the selection of flows in
// scope, the buffered output with progress, and the table columns shared by CSV and HTML.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "report.h"

namespace redirect::engine::report_detail {

template <typename T> std::string decimalString(T value)
{
    std::array<char, 32> buffer;
    auto end = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value).ptr;
    return std::string(buffer.data(), end);
}


constexpr size_t kReasonCount = size_t(kLastEndReason) + 1;
constexpr size_t kProgressEvery = 1000;
constexpr size_t kFlushBytes = 64 * 1024;

std::optional<uint64_t> parseNumber(std::string_view text, bool allowHex);
/// ASCII lower case; other bytes (UTF-8 included) as they are.
std::string lowerCopy(std::string_view text);
bool isValidUtf8(std::string_view s);
/// Names from the kernel and the peek are arbitrary bytes; JSON and HTML need UTF-8.
std::string validUtf8(std::string_view s);

/// The flows in scope (pointers into the caller's vector) and their totals.
struct Selection {
    std::vector<const Flow*> flows;
    uint64_t bytesUp = 0;
    uint64_t bytesDown = 0;
    std::array<size_t, kReasonCount> byReason{};
};

/// Buffers output, reports progress and notices cancellation or a failed stream.
class Sink {
public:
    Sink(std::ostream& out, const ReportProgress& progress, size_t total)
        : out_(out), progress_(progress), total_(total) {}
    std::string buffer;

    bool start() { return report(0); }
    /// After each flow; true to go on.
    bool flowDone(size_t done)
    {
        if (buffer.size() >= kFlushBytes && !flush())
            return false;
        return (done % kProgressEvery != 0 && done != total_) || report(done);
    }
    bool finish() { return flush() && bool(out_.flush()); }

private:
    bool flush()
    {
        out_.write(buffer.data(), std::streamsize(buffer.size()));
        buffer.clear();
        return bool(out_);
    }
    bool report(size_t done) { return bool(out_) && (!progress_ || progress_(done, total_)); }

    std::ostream& out_;
    const ReportProgress& progress_;
    size_t total_;
};

enum class Kind : uint8_t { Number, Text, Bytes };
struct Column {
    const char* name;
    Kind kind;
};
// New columns go last: scripts that read an older report's columns by position keep working.
constexpr std::array<Column, 23> kColumns = {{
    {"flow_id", Kind::Number}, {"start", Kind::Text}, {"end", Kind::Text}, {"duration_ms", Kind::Number},
    {"pid", Kind::Number}, {"uid", Kind::Number}, {"user", Kind::Text}, {"comm", Kind::Text},
    {"destination", Kind::Text}, {"host", Kind::Text}, {"rule", Kind::Text}, {"verdict", Kind::Text},
    {"chain", Kind::Text}, {"hop_count", Kind::Number}, {"states", Kind::Text}, {"records_sizes", Kind::Text},
    {"context_sizes", Kind::Text}, {"bytes_up", Kind::Bytes}, {"bytes_down", Kind::Bytes}, {"reason", Kind::Text},
    {"protocol", Kind::Text}, {"datagrams_up", Kind::Number}, {"datagrams_down", Kind::Number},
}};
using Row = std::array<std::string, kColumns.size()>;

/// One flow as the cells of kColumns: the row of the CSV and of the HTML table.
void fillRow(const Flow& flow, Row& row);

bool writeHtml(Sink& sink, const Selection& selection, const ReportScope& scope, const ReportMeta& meta);

}  // namespace redirect::engine::report_detail

#include "format.h"

#include <charconv>
#include <cmath>
#include <iterator>

#include <netinet/in.h>

namespace redirect::engine {

namespace {

constexpr std::string_view kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

// The unit is chosen on the rounded value, so 1023.96 KiB reads "1.0 MiB", never "1024 KiB".
std::string scaled(double bytes, std::string_view suffix)
{
    size_t unit = 0;
    int decimals = 0;
    for (;;) {
        decimals = unit > 0 && bytes < 9.95 ? 1 : 0;
        const double shown = decimals ? std::round(bytes * 10) / 10 : std::round(bytes);
        if (shown < 1024 || unit + 1 == std::size(kUnits))
            break;
        bytes /= 1024;
        ++unit;
    }
    // to_chars, not printf: the GUI sets the C locale from the environment, and "1,5" would
    // differ from the reports. Fixed notation of the largest double takes 309 digits.
    char text[330];
    auto [end, ec] = std::to_chars(text, text + sizeof(text), bytes, std::chars_format::fixed, decimals);
    std::string out(text, ec == std::errc() ? end : text);
    out += ' ';
    out += kUnits[unit];
    out += suffix;
    return out;
}

void appendPadded(std::string& out, int64_t value)
{
    if (value < 10)
        out += '0';
    out += std::to_string(value);
}

}  // namespace

std::string formatBytes(uint64_t bytes) { return scaled(double(bytes), {}); }

std::string formatRate(double bytesPerSecond)
{
    if (!std::isfinite(bytesPerSecond) || bytesPerSecond < 0)
        return {};
    return scaled(bytesPerSecond, "/s");
}

std::string formatDuration(int64_t ns)
{
    if (ns < 0)
        return {};
    if (ns < 1'000'000)
        return std::to_string(ns / 1000) + " \xC2\xB5s";
    std::string out;
    if (ns < 10'000'000) {  // a tenth of a millisecond still matters for a connect latency
        const int64_t tenths = ns / 100'000;
        return std::to_string(tenths / 10) + '.' + std::to_string(tenths % 10) + " ms";
    }
    if (ns < 1'000'000'000)
        return std::to_string(ns / 1'000'000) + " ms";
    const int64_t s = ns / 1'000'000'000;
    if (s < 60) {
        const int64_t centis = ns / 10'000'000;
        out = std::to_string(centis / 100) + '.';
        appendPadded(out, centis % 100);
        return out + " s";
    }
    if (s < 3600) {
        out = std::to_string(s / 60) + "m ";
        appendPadded(out, s % 60);
        return out + 's';
    }
    out = std::to_string(s / 3600) + "h ";
    appendPadded(out, s / 60 % 60);
    return out + 'm';
}

void appendCsvField(std::string& out, std::string_view value, CsvField kind)
{
    // Spreadsheets run a cell that starts like a formula; a leading quote makes it text.
    const bool guard = kind == CsvField::Text && !value.empty() &&
                       std::string_view("=+-@\t\r").find(value[0]) != std::string_view::npos;
    const bool quote = value.find_first_of(",\"\r\n") != std::string_view::npos;
    if (quote)
        out += '"';
    if (guard)
        out += '\'';
    for (char c : value) {
        if (c == '"')
            out += '"';
        out += c;
    }
    if (quote)
        out += '"';
}

const char* protocolName(uint8_t protocol)
{
    return protocol == IPPROTO_UDP ? "udp" : "tcp";
}

std::optional<uint8_t> protocolByName(std::string_view name)
{
    if (name == "tcp")
        return IPPROTO_TCP;
    if (name == "udp")
        return IPPROTO_UDP;
    return std::nullopt;
}

}  // namespace redirect::engine

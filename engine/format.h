// Text forms that the console and the reports share. One formatter for byte counts, rates and
// durations (as KDE libksysguard's Formatter), so that the flow table, the charts, the chain view
// and the HTML report say the same thing; and one CSV field writer, so that text copied from the
// console is as safe to open in a spreadsheet as an exported report.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace redirect::engine {

/// IEC units (1 KiB = 1024 B): "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "10 MiB", up to "16 EiB".
/// One decimal below 10 of a unit, none from 10 on; the next unit once rounding would reach 1024.
/// The decimal point is '.' in every locale, as in the reports.
std::string formatBytes(uint64_t bytes);

/// Bytes per second in the units of formatBytes(): "0 B/s", "512 B/s", "1.5 MiB/s".
/// "" for a negative or non-finite rate (unknown).
std::string formatRate(double bytesPerSecond);

/// Nanoseconds for people: "850 µs", "1.2 ms", "12 ms", "1.50 s", "2m 05s", "3h 07m"; "" when
/// negative (unknown). Truncates, so that a duration never shows longer than it was.
std::string formatDuration(int64_t ns);

/// A flow's protocol as the reports, the control API and the console's filter spell it: "udp"
/// for IPPROTO_UDP, "tcp" for anything else (the engine relays only these two).
const char* protocolName(uint8_t protocol);
/// IPPROTO_TCP or IPPROTO_UDP for "tcp" or "udp"; nullopt for any other text.
std::optional<uint8_t> protocolByName(std::string_view name);

/// What a CSV field holds: text is guarded against formula injection, numbers are written as they are.
enum class CsvField : uint8_t { Text, Number };

/**
 * Appends `value` as one RFC 4180 field: in double quotes, with quotes doubled, when it holds a
 * comma, a quote, CR or LF. A Text field that begins with '=', '+', '-', '@', TAB or CR gets a
 * leading single quote, so that a spreadsheet shows it as text instead of running it as a formula.
 */
void appendCsvField(std::string& out, std::string_view value, CsvField kind = CsvField::Text);

}  // namespace redirect::engine

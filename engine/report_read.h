// Reads a JSON report (writeReport with ReportFormat::Json, schema "redirect-console.report/1")
// back into flows, for the console's read-only report window. Every file is checked whole before
// anything is returned: a bad file gives one error that says what is wrong and where.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "flow.h"
#include "report.h"

namespace redirect::engine {

/// What a JSON report holds. Times come back at the report's precision (milliseconds).
struct ReportContents {
    ReportMeta meta;          ///< generator, generated time, host, scope in words
    ReportScope scope;        ///< the filter and time range it was written with (0: unbounded)
    std::vector<Flow> flows;  ///< in the order of the file
};

struct ReportReadResult {
    ReportContents report;
    std::string error;        ///< "" when read; else one line: what is wrong, and where
    bool ok() const { return error.empty(); }
};

/// The JSON report schema this reader understands.
inline constexpr std::string_view kReportSchema = "redirect-console.report/1";

/**
 * Parses the text of a JSON report. Errors name the problem: not JSON (with line and column),
 * truncated (the text ends early), another schema or version, or a field of a flow that is
 * missing or of the wrong kind ("flows[3].hops[0].state: ...").
 */
ReportReadResult readJsonReport(std::string_view text);

/// Reads the file at `path` (at most kMaxReportBytes); errors start with the path, and a file that
/// cannot be read says why (errno text).
ReportReadResult readReportFile(const std::string& path);

/// Larger files are refused before they are read (a report of about a million flows).
inline constexpr size_t kMaxReportBytes = size_t(1) << 30;

}  // namespace redirect::engine

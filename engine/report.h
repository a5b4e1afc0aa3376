// Connection reports (CSV, JSON, self-contained HTML) over the flow table,
// scoped by a filter and a time range, and the one JSON shape of a flow that
// the JSON report and the headless JSON lines share.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "flow.h"

namespace redirect::engine {

enum class ReportFormat { Csv, Json, Html };

/// By extension (.csv, .json, .html, .htm; case-insensitive); nullopt otherwise.
std::optional<ReportFormat> reportFormatForPath(const std::string& path);

/// "2025-01-02T03:04:05.678Z" (RFC 3339, UTC, milliseconds); "" for 0 (unknown / open).
std::string rfc3339Utc(int64_t ns);

/**
 * The console's flow filter, e.g. `curl dest:10.0.0.1 reason:refused -chain:dlp "two words"`.
 *
 * Tokens are separated by white space; double quotes group (a token that
 * starts with a quote is always a plain word). Every token must match (AND);
 * a leading `-` negates one. A plain word matches, ASCII case-insensitively,
 * a substring of any of comm, user, destination, host, rule, verdict, chain
 * text, end reason, pid, flow id or protocol. `field:value` looks at one field:
 * comm, user, dest|destination, host, rule, verdict, chain, reason and
 * redirector (any redirecting hop's name) match substrings; pid, uid and flow
 * must equal the number (decimal, or 0x hex for flow), and redirector:N
 * also matches a hop's numeric redirector id exactly. rule matches the rule of
 * the first hop or of any later one; port equals the destination's port;
 * route matches the route in words ("2 hops, records missing at B");
 * protocol must be tcp or udp and equals the flow's.
 */
class FlowFilter {
public:
    /// nullopt, with a message in *error, for an unknown field, a bad number or an open quote.
    static std::optional<FlowFilter> parse(std::string_view text, std::string* error = nullptr);

    bool matches(const Flow& flow) const;
    bool empty() const { return terms_.empty(); }
    /// The field names parse() knows, for completion and help.
    static std::vector<std::string> fieldNames();

private:
    enum class Field : uint8_t {
        Any, Comm, Pid, Uid, User, Destination, Host, Rule, Verdict, Chain, Reason, Redirector, FlowId, Node, Port,
        Route, Protocol
    };
    struct Term {
        Field field = Field::Any;
        bool negate = false;
        std::string text;              ///< lower-cased
        std::optional<uint64_t> number;
    };
    bool matchesTerm(const Term& term, const Flow& flow, std::string& chainCache) const;

    std::vector<Term> terms_;
};

/// Whether [flow start, flow end] overlaps [fromNs, toNs]; 0 bounds are open, open flows still run.
bool overlapsTimeRange(const Flow& flow, int64_t fromNs, int64_t toNs);

/// Which flows a report covers: those that match `filter` and overlap [fromNs, toNs].
struct ReportScope {
    std::string filter;   ///< FlowFilter text; "" = every flow
    int64_t fromNs = 0;   ///< 0: unbounded
    int64_t toNs = 0;     ///< 0: unbounded
};

struct ReportMeta {
    std::string generator;   ///< e.g. "Redirect Console 0.1.0"
    int64_t generatedNs = 0;
    std::string scopeText;   ///< the scope in words, as the user chose it
    std::string hostname;
};

/**
 * One flow as JSON; the schema of the JSON report's "flows" and of the
 * headless JSON lines. Times are RFC 3339 UTC strings (null when unknown or
 * open), sizes and byte counts numbers, blobs lower-case hex. Every string is
 * valid UTF-8 (bad bytes become U+FFFD), so dump() never throws.
 */
nlohmann::json flowToJson(const Flow& flow);

/// Called with (flows written, flows in scope); return false to cancel.
using ReportProgress = std::function<bool(size_t done, size_t total)>;

/**
 * Write the flows in `scope` as one report. Streams: memory beyond the input
 * is one pointer per flow in scope, one row being formatted and, for HTML,
 * the summary counters. `progress` runs at the start, every 1,000 flows and
 * at the end. Returns false when cancelled or when the stream failed; the
 * output is then incomplete. Throws std::invalid_argument for a bad filter
 * (check it first with FlowFilter::parse).
 *
 * CSV (RFC 4180: CRLF, header row, quoting with doubled quotes) guards
 * spreadsheet users against formula injection: a text field that begins with
 * '=', '+', '-', '@', TAB or CR gets a leading single quote. Numeric columns
 * are written as they are. The fields are appendCsvField()'s (format.h), as
 * in the console's "copy rows as CSV".
 */
bool writeReport(std::ostream& out, ReportFormat format, const std::vector<Flow>& flows,
                 const ReportScope& scope, const ReportMeta& meta, const ReportProgress& progress = {});

}  // namespace redirect::engine

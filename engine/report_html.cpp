// The self-contained HTML report: totals, top destinations and processes, chains, and a
// sortable table of every flow in scope.
#include <algorithm>
#include <map>
#include <unordered_map>

#include "format.h"
#include "report_writer.h"

namespace redirect::engine::report_detail {

namespace {

// ---- HTML ---------------------------------------------------------------------------------------

// Inline only, and the CSP forbids every fetch: the file works offline and cannot call home.
constexpr std::string_view kHtmlHead = R"(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; background: #fff; margin: 1.5rem 2rem; }
h1 { font-size: 1.5rem; margin: 0 0 .75rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; padding-bottom: .25rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .25rem 0 1rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.meta th { background: none; }
.grid { display: flex; flex-wrap: wrap; gap: 0 2.5rem; }
.none { color: #6e7781; font-style: italic; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f6f8fa; padding: 0 .25rem; }
.scroll { max-height: 85vh; overflow: auto; border: 1px solid #d0d7de; }
#flows { font-size: 13px; margin: 0; }
#flows th { cursor: pointer; position: sticky; top: 0; z-index: 1; }
#flows th[aria-sort=ascending]::after { content: " \25B2"; }
#flows th[aria-sort=descending]::after { content: " \25BC"; }
#flows td { white-space: nowrap; }
#flows tbody tr:nth-child(even) { background: #fafbfc; }
footer { margin-top: 2rem; color: #6e7781; font-size: 12px; }
</style>
)";

// Sorting only; every lookup is guarded so that the script cannot throw.
constexpr std::string_view kHtmlScript = R"(<script>
(function () {
  'use strict';
  var table = document.getElementById('flows');
  if (!table || !table.tHead || !table.tHead.rows.length || !table.tBodies.length) return;
  var body = table.tBodies[0], heads = table.tHead.rows[0].cells, sorted = -1, dir = 1;
  function key(row, col, numeric) {
    var cell = row.cells[col];
    var v = cell ? (cell.getAttribute('data-v') || cell.textContent) : '';
    if (!numeric) return v.toLowerCase();
    var n = parseFloat(v);
    return isNaN(n) ? -Infinity : n;
  }
  function sortBy(col) {
    var numeric = heads[col].classList.contains('num');
    dir = sorted === col ? -dir : 1;
    sorted = col;
    var keyed = Array.prototype.map.call(body.rows, function (row, i) { return [key(row, col, numeric), i, row]; });
    keyed.sort(function (a, b) { return a[0] < b[0] ? -dir : a[0] > b[0] ? dir : a[1] - b[1]; });
    var rows = document.createDocumentFragment();
    keyed.forEach(function (k) { rows.appendChild(k[2]); });
    body.appendChild(rows);
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute('aria-sort');
    heads[col].setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.title = 'Sort';
    th.addEventListener('click', function () { sortBy(col); });
  });
})();
</script>
)";

void appendEscaped(std::string& out, std::string_view text)
{
    std::string clean;
    if (!isValidUtf8(text)) {
        clean = validUtf8(text);
        text = clean;
    }
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
}

// Human-readable, with the exact count in the tooltip and for sorting.
void appendBytesCell(std::string& out, uint64_t bytes)
{
    std::string exact = decimalString(bytes);
    out.append("<td class=\"num\" data-v=\"").append(exact).append("\" title=\"").append(exact);
    out.append(" bytes\">").append(formatBytes(bytes)).append("</td>");
}

void appendTextOrNone(std::string& out, std::string_view text, std::string_view none = "none")
{
    if (text.empty())
        out.append("<span class=\"none\">").append(none).append("</span>");
    else
        appendEscaped(out, text);
}

struct Tally {
    size_t flows = 0;
    uint64_t bytesUp = 0;
    uint64_t bytesDown = 0;
};

/// The `limit` largest tallies by flows, then bytes, then name (stable across runs).
template <typename Map>
std::vector<std::pair<std::string_view, Tally>> largest(const Map& map, size_t limit)
{
    std::vector<std::pair<std::string_view, Tally>> rows(map.begin(), map.end());
    auto before = [](const auto& a, const auto& b) {
        if (a.second.flows != b.second.flows) return a.second.flows > b.second.flows;
        uint64_t ba = a.second.bytesUp + a.second.bytesDown, bb = b.second.bytesUp + b.second.bytesDown;
        return ba != bb ? ba > bb : a.first < b.first;
    };
    limit = std::min(limit, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + ptrdiff_t(limit), rows.end(), before);
    rows.resize(limit);
    return rows;
}

void appendTallyTable(std::string& out, std::string_view title, std::string_view keyName,
                      const std::vector<std::pair<std::string_view, Tally>>& rows, size_t total)
{
    out.append("<section><h2>").append(title).append("</h2>\n");
    if (rows.empty()) {
        out += "<p class=\"none\">No flows in scope.</p></section>\n";
        return;
    }
    out.append("<table><thead><tr><th>").append(keyName);
    out += "</th><th class=\"num\">Flows</th><th class=\"num\">Bytes up</th><th class=\"num\">Bytes down</th></tr></thead><tbody>\n";
    for (const auto& [key, tally] : rows) {
        out += "<tr><td>";
        appendTextOrNone(out, key, "unknown");
        out.append("</td><td class=\"num\">").append(decimalString(tally.flows)).append("</td>");
        appendBytesCell(out, tally.bytesUp);
        appendBytesCell(out, tally.bytesDown);
        out += "</tr>\n";
    }
    out += "</tbody></table>\n";
    if (total > rows.size())
        out.append("<p class=\"none\">and ").append(decimalString(total - rows.size())).append(" more</p>\n");
    out += "</section>\n";
}

void appendHeader(std::string& out, const Selection& selection, const ReportScope& scope, const ReportMeta& meta)
{
    auto row = [&](std::string_view name, auto value) {
        out.append("<tr><th>").append(name).append("</th><td>");
        value();
        out += "</td></tr>\n";
    };
    out += kHtmlHead;
    out += "<title>Redirect Console report";
    if (!meta.hostname.empty()) {
        out += " \xE2\x80\x94 ";
        appendEscaped(out, meta.hostname);
    }
    out += "</title>\n</head>\n<body>\n<h1>Redirect Console report</h1>\n<table class=\"meta\">\n";
    row("Generated", [&] { appendTextOrNone(out, rfc3339Utc(meta.generatedNs), "unknown"); });
    row("Generator", [&] { appendTextOrNone(out, meta.generator, "unknown"); });
    row("Host", [&] { appendTextOrNone(out, meta.hostname, "unknown"); });
    row("Scope", [&] { appendTextOrNone(out, meta.scopeText, "all flows"); });
    row("Filter", [&] {
        if (scope.filter.empty())
            return appendTextOrNone(out, {});
        out += "<code>";
        appendEscaped(out, scope.filter);
        out += "</code>";
    });
    row("From", [&] { appendTextOrNone(out, rfc3339Utc(scope.fromNs), "the first flow"); });
    row("To", [&] { appendTextOrNone(out, rfc3339Utc(scope.toNs), "the last flow"); });
    out += "</table>\n<section><h2>Totals</h2>\n<table class=\"meta\">\n";
    row("Flows", [&] { out += decimalString(selection.flows.size()); });
    row("Bytes up", [&] { out.append(formatBytes(selection.bytesUp)).append(" (").append(decimalString(selection.bytesUp)).append(" bytes)"); });
    row("Bytes down", [&] { out.append(formatBytes(selection.bytesDown)).append(" (").append(decimalString(selection.bytesDown)).append(" bytes)"); });
    out += "</table>\n</section>\n";
}

}  // namespace

bool writeHtml(Sink& sink, const Selection& selection, const ReportScope& scope, const ReportMeta& meta)
{
    // The summaries key by views into the flows; only chains are built strings.
    std::unordered_map<std::string_view, Tally> reasons, destinations, processes;
    std::unordered_map<std::string, Tally> chains;
    for (const Flow* flow : selection.flows) {
        auto add = [&](Tally& tally) {
            ++tally.flows;
            tally.bytesUp += flow->bytesUp;
            tally.bytesDown += flow->bytesDown;
        };
        add(reasons[endReasonName(flow->reason)]);
        add(destinations[flow->destination]);
        add(processes[flow->comm]);
        // The redirectors only: the destinations have their own table.
        std::string chain = flow->chainText();
        if (std::string suffix = " -> " + flow->destination; chain.ends_with(suffix))
            chain.resize(chain.size() - suffix.size());
        add(chains[std::move(chain)]);
    }
    std::string& out = sink.buffer;
    appendHeader(out, selection, scope, meta);
    out += "<div class=\"grid\">\n";
    appendTallyTable(out, "By end reason", "Reason", largest(reasons, kReasonCount), reasons.size());
    appendTallyTable(out, "Top destinations", "Destination", largest(destinations, 10), destinations.size());
    appendTallyTable(out, "Top processes", "Process", largest(processes, 10), processes.size());
    appendTallyTable(out, "Chains", "Chain", largest(chains, 100), chains.size());
    out += "</div>\n<section><h2>Flows</h2>\n<div class=\"scroll\"><table id=\"flows\"><thead><tr>";
    for (const Column& column : kColumns)
        out.append(column.kind == Kind::Text ? "<th>" : "<th class=\"num\">").append(column.name).append("</th>");
    out += "</tr></thead>\n<tbody>\n";
    Row row;
    for (size_t n = 0; n < selection.flows.size(); ++n) {
        fillRow(*selection.flows[n], row);
        out += "<tr>";
        for (size_t i = 0; i < row.size(); ++i) {
            if (kColumns[i].kind == Kind::Bytes) {
                appendBytesCell(out, parseNumber(row[i], false).value_or(0));
                continue;
            }
            out += kColumns[i].kind == Kind::Number ? "<td class=\"num\">" : "<td>";
            appendEscaped(out, row[i]);
            out += "</td>";
        }
        out += "</tr>\n";
        if (!sink.flowDone(n + 1))
            return false;
    }
    out += "</tbody></table></div>\n</section>\n<footer>Written by ";
    appendTextOrNone(out, meta.generator, "Redirect Console");
    out += ". Click a column of the flow table to sort it.</footer>\n";
    out += kHtmlScript;
    out += "</body>\n</html>\n";
    return true;
}

}  // namespace redirect::engine::report_detail

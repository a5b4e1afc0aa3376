// The console's flow filter and the time-range test: which flows a view or a report covers.
#include <algorithm>
#include <array>
#include <charconv>

#include "format.h"
#include "report_writer.h"

namespace redirect::engine {

using namespace report_detail;

namespace {

char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

// `needle` is already lower-case; no allocation per comparison.
bool containsNoCase(std::string_view haystack, std::string_view needle)
{
    return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                       [](char h, char n) { return lowerAscii(h) == n; }) != haystack.end();
}

std::string_view decimal(uint64_t value, std::array<char, 24>& buffer)
{
    auto end = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value).ptr;
    return {buffer.data(), size_t(end - buffer.data())};
}

}  // namespace

namespace report_detail {

std::string lowerCopy(std::string_view text)
{
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), lowerAscii);
    return out;
}

std::optional<uint64_t> parseNumber(std::string_view text, bool allowHex)
{
    int base = 10;
    if (allowHex && text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        text.remove_prefix(2);
        base = 16;
    }
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

}  // namespace report_detail

namespace {

// "host:port" or "[v6]:port" -> port; nullopt when there is none.
std::optional<uint64_t> destinationPort(const std::string& destination)
{
    size_t colon = destination.rfind(':');
    if (colon == std::string::npos || (destination.front() == '[' && destination[colon - 1] != ']'))
        return std::nullopt;
    return parseNumber(std::string_view(destination).substr(colon + 1), false);
}

}  // namespace

std::vector<std::string> FlowFilter::fieldNames()
{
    return {"comm", "pid", "uid", "user", "dest", "port", "host", "rule", "verdict", "route", "chain", "reason",
            "redirector", "flow", "node", "protocol"};
}

std::optional<FlowFilter> FlowFilter::parse(std::string_view text, std::string* error)
{
    static const std::pair<std::string_view, Field> fields[] = {
        {"comm", Field::Comm}, {"pid", Field::Pid}, {"uid", Field::Uid}, {"user", Field::User},
        {"dest", Field::Destination}, {"destination", Field::Destination}, {"host", Field::Host},
        {"rule", Field::Rule}, {"verdict", Field::Verdict}, {"chain", Field::Chain},
        {"reason", Field::Reason}, {"redirector", Field::Redirector}, {"flow", Field::FlowId}, {"node", Field::Node},
        {"port", Field::Port}, {"route", Field::Route}, {"protocol", Field::Protocol}};
    auto fail = [&](std::string message) -> std::optional<FlowFilter> {
        if (error)
            *error = std::move(message);
        return std::nullopt;
    };
    auto isSpace = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };

    FlowFilter filter;
    for (size_t i = 0; i < text.size();) {
        if (isSpace(text[i])) {
            ++i;
            continue;
        }
        Term term;
        if (text[i] == '-' && i + 1 < text.size() && !isSpace(text[i + 1])) {
            term.negate = true;
            ++i;
        }
        const bool quotedStart = text[i] == '"';
        bool inQuote = false, sawQuote = false;
        size_t colon = std::string::npos;
        std::string word;
        for (; i < text.size() && (inQuote || !isSpace(text[i])); ++i) {
            char c = text[i];
            if (c == '"') {
                inQuote = !inQuote;
                sawQuote = true;
            } else {
                if (c == ':' && !inQuote && !sawQuote && colon == std::string::npos)
                    colon = word.size();
                word += c;
            }
        }
        if (inQuote)
            return fail("unterminated quote in filter");

        std::string_view name = colon == std::string::npos ? std::string_view{} : std::string_view(word).substr(0, colon);
        const bool isField = !quotedStart && !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        });
        std::string value = isField ? word.substr(colon + 1) : word;
        if (isField) {
            std::string lowerName = lowerCopy(name);
            auto it = std::find_if(std::begin(fields), std::end(fields), [&](auto& f) { return f.first == lowerName; });
            if (it == std::end(fields))
                return fail("unknown filter field '" + std::string(name) +
                            "' (fields: comm, pid, uid, user, dest, port, host, rule, verdict, route, chain, "
                            "reason, redirector, flow, node, protocol; quote \"" + word + "\" to search for the text)");
            term.field = it->second;
        }
        term.text = lowerCopy(value);
        if (term.field == Field::Pid || term.field == Field::Uid || term.field == Field::FlowId ||
            term.field == Field::Port) {
            term.number = parseNumber(value, term.field == Field::FlowId);
            uint64_t most = term.field == Field::Port ? 65535 : UINT32_MAX;
            bool fits = term.number && (term.field == Field::FlowId || *term.number <= most);
            if (!fits)
                return fail("filter field '" + std::string(name) + "' needs a number, not '" + value + "'");
        } else if (term.field == Field::Redirector) {
            term.number = parseNumber(value, false);
        } else if (term.field == Field::Protocol) {
            // Exact, not a substring: "protocol:p" matching tcp and udp alike would hide a typo.
            std::optional<uint8_t> protocol = protocolByName(term.text);
            if (!protocol)
                return fail("filter field 'protocol' needs tcp or udp, not '" + value + "'");
            term.number = *protocol;
        }
        filter.terms_.push_back(std::move(term));
    }
    return filter;
}

bool FlowFilter::matches(const Flow& flow) const
{
    std::string chainCache;  // chainText() allocates: once per flow, only when asked for
    for (const Term& term : terms_)
        if (matchesTerm(term, flow, chainCache) == term.negate)
            return false;
    return true;
}

bool FlowFilter::matchesTerm(const Term& term, const Flow& flow, std::string& chainCache) const
{
    auto chain = [&]() -> const std::string& {
        if (chainCache.empty())
            chainCache = flow.chainText();
        return chainCache;
    };
    const std::string_view t = term.text;
    switch (term.field) {
    case Field::Any: {
        std::array<char, 24> pid, id;
        for (std::string_view field : {std::string_view(flow.comm), std::string_view(flow.user),
                                       std::string_view(flow.destination), std::string_view(flow.host),
                                       std::string_view(flow.rule), std::string_view(flow.verdict),
                                       std::string_view(endReasonName(flow.reason)), decimal(flow.pid, pid),
                                       decimal(flow.flowId, id), std::string_view(flow.node),
                                       std::string_view(protocolName(flow.protocol))})
            if (containsNoCase(field, t))
                return true;
        return containsNoCase(chain(), t);
    }
    case Field::Comm: return containsNoCase(flow.comm, t);
    case Field::Pid: return flow.pid == *term.number;
    case Field::Uid: return flow.uid == *term.number;
    case Field::User: return containsNoCase(flow.user, t);
    case Field::Destination: return containsNoCase(flow.destination, t);
    case Field::Host: return containsNoCase(flow.host, t);
    case Field::Rule:
        return containsNoCase(flow.rule, t) ||
               std::any_of(flow.hops.begin(), flow.hops.end(), [&](const Hop& hop) { return containsNoCase(hop.rule, t); });
    case Field::Port: return destinationPort(flow.destination) == term.number;
    case Field::Route: return containsNoCase(flow.routeText(), t);
    case Field::Verdict: return containsNoCase(flow.verdict, t);
    case Field::Chain: return containsNoCase(chain(), t);
    case Field::Reason: return containsNoCase(endReasonName(flow.reason), t);
    case Field::FlowId: return flow.flowId == *term.number;
    case Field::Node: return containsNoCase(flow.node, t);
    case Field::Protocol: return flow.protocol == *term.number;
    case Field::Redirector:
        return std::any_of(flow.hops.begin(), flow.hops.end(), [&](const Hop& hop) {
            return hop.redirectorId != 0 &&
                   (containsNoCase(hop.redirector, t) || (term.number && hop.redirectorId == *term.number));
        });
    }
    return false;
}

bool overlapsTimeRange(const Flow& flow, int64_t fromNs, int64_t toNs)
{
    if (toNs != 0 && flow.startNs > toNs)
        return false;
    if (fromNs != 0 && flow.endNs != 0 && flow.endNs < fromNs)
        return false;
    return true;
}

}  // namespace redirect::engine

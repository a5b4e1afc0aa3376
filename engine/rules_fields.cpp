#include "rules_fields.h"

#include <cstdio>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace redirect::engine {

std::string Endpoint::str() const
{
    char buf[INET6_ADDRSTRLEN];
    ::inet_ntop(family, addr.data(), buf, sizeof buf);
    return family == AF_INET6 ? "[" + std::string(buf) + "]:" + std::to_string(port)
                              : std::string(buf) + ":" + std::to_string(port);
}

sockaddr_storage Endpoint::sockaddr() const
{
    sockaddr_storage ss{};
    if (family == AF_INET6) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        std::memcpy(&sin6->sin6_addr, addr.data(), 16);
    } else {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        std::memcpy(&sin->sin_addr, addr.data(), 4);
    }
    return ss;
}

bool Endpoint::isLoopback() const
{
    if (family == AF_INET)
        return addr[0] == 127;
    static constexpr std::array<uint8_t, 16> loopback6 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return addr == loopback6;
}

std::string Cidr::str() const
{
    char buf[INET6_ADDRSTRLEN];
    ::inet_ntop(family, addr.data(), buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(prefixLen);
}

namespace fields {

namespace {

// Digits only (no sign, no spaces), at most `maxDigits` of them.
bool parseDigits(std::string_view text, size_t maxDigits, int64_t& out)
{
    if (text.empty() || text.size() > maxDigits)
        return false;
    out = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return false;
        out = out * 10 + (c - '0');
    }
    return true;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t daysFromCivil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void civilFromDays(int64_t z, int64_t& y, int& m, int& d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    d = int(doy - (153 * mp + 2) / 5 + 1);
    m = int(mp < 10 ? mp + 3 : mp - 9);
    y = yoe + era * 400 + (m <= 2);
}

int daysInMonth(int64_t y, int m)
{
    static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

}  // namespace

std::string parseEndpoint(std::string_view text, Endpoint& out)
{
    std::string syntax = "expected an endpoint like \"127.0.0.1:15002\" or \"[::1]:15002\", got " + quoted(text);
    std::string host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find("]:");
        if (close == std::string_view::npos)
            return syntax;
        host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
        out.family = AF_INET6;
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos || text.substr(0, colon).find(':') != std::string_view::npos)
            return syntax;
        host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
        out.family = AF_INET;
    }
    out.addr = {};
    if (::inet_pton(out.family, host.c_str(), out.addr.data()) != 1)
        return "invalid " + std::string(out.family == AF_INET ? "IPv4" : "IPv6") + " address " + quoted(host)
             + " in endpoint " + quoted(text);
    int64_t number = 0;
    if (!parseDigits(port, 6, number))
        return syntax;
    return checkPort(number, out.port);
}

std::string parseCidr(std::string_view text, Cidr& out)
{
    size_t slash = text.find('/');
    std::string host(text.substr(0, slash));
    out.family = host.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    out.addr = {};
    if (::inet_pton(out.family, host.c_str(), out.addr.data()) != 1)
        return "invalid address " + quoted(host) + " in CIDR " + quoted(text);
    int maxPrefix = out.family == AF_INET ? 32 : 128;
    int64_t prefix = maxPrefix;
    if (slash != std::string_view::npos) {
        if (!parseDigits(text.substr(slash + 1), 3, prefix))
            return "expected a prefix length after '/' in CIDR " + quoted(text);
        if (prefix > maxPrefix)
            return "prefix length " + std::to_string(prefix) + " too long in CIDR " + quoted(text) + " (at most "
                 + std::to_string(maxPrefix) + ")";
    }
    out.prefixLen = uint8_t(prefix);
    Cidr network = out;
    for (int bit = int(prefix); bit < maxPrefix; ++bit)
        network.addr[size_t(bit / 8)] &= uint8_t(~(0x80u >> (bit % 8)));
    if (network.addr != out.addr)
        return "host bits set in CIDR " + quoted(text) + " (did you mean " + quoted(network.str()) + "?)";
    return {};
}

std::string checkPort(int64_t port, uint16_t& out)
{
    if (port < 1 || port > 65535)
        return "port " + std::to_string(port) + " out of range 1-65535";
    out = uint16_t(port);
    return {};
}

std::string parsePortList(std::string_view text, std::vector<PortRange>& out)
{
    std::string_view rest = text;
    for (;;) {
        size_t comma = rest.find(',');
        std::string_view item = trim(rest.substr(0, comma));
        size_t dash = item.find('-');
        int64_t first = 0;
        int64_t last = 0;
        bool good = parseDigits(trim(item.substr(0, dash)), 6, first);
        if (dash == std::string_view::npos)
            last = first;
        else
            good = good && parseDigits(trim(item.substr(dash + 1)), 6, last);
        if (!good)
            return "expected a port like \"443\" or a range like \"8000-8999\", got " + quoted(item) + " in "
                 + quoted(text);
        PortRange range;
        if (std::string e = checkPort(first, range.first); !e.empty())
            return e;
        if (std::string e = checkPort(last, range.last); !e.empty())
            return e;
        if (range.first > range.last)
            return "reversed port range " + quoted(item) + " (first must not exceed last)";
        out.push_back(range);
        if (comma == std::string_view::npos)
            return {};
        rest.remove_prefix(comma + 1);
    }
}

std::string formatPorts(const std::vector<PortRange>& ports)
{
    std::string out;
    for (const PortRange& r : ports) {
        if (!out.empty())
            out += ',';
        out += std::to_string(r.first);
        if (r.last != r.first)
            out += "-" + std::to_string(r.last);
    }
    return out;
}

std::string parseTime(std::string_view text, int64_t& ns)
{
    std::string syntax = "expected an RFC 3339 time like \"2026-12-31T00:00:00Z\" or \"2026-12-31T02:00:00+02:00\", got "
                       + quoted(text);
    // Fixed-width fields: YYYY-MM-DDTHH:MM:SS
    auto field = [&](size_t at, size_t width, int64_t& v) { return parseDigits(text.substr(at, width), width, v); };
    int64_t year, month, day, hour, minute, second;
    if (text.size() < 20 || !field(0, 4, year) || text[4] != '-' || !field(5, 2, month) || text[7] != '-'
        || !field(8, 2, day) || (text[10] != 'T' && text[10] != 't') || !field(11, 2, hour) || text[13] != ':'
        || !field(14, 2, minute) || text[16] != ':' || !field(17, 2, second))
        return syntax;
    size_t at = 19;
    int64_t fraction = 0;
    if (text[at] == '.') {
        size_t digits = 0;
        for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++digits)
            if (digits < 9)
                fraction = fraction * 10 + (text[at] - '0');
        if (digits == 0)
            return syntax;
        for (; digits < 9; ++digits)
            fraction *= 10;
    }
    int64_t offset = 0;
    std::string_view zone = text.substr(std::min(at, text.size()));
    if (zone == "Z" || zone == "z") {
        offset = 0;
    } else {
        int64_t oh, om;
        if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || !parseDigits(zone.substr(1, 2), 2, oh)
            || zone[3] != ':' || !parseDigits(zone.substr(4, 2), 2, om))
            return syntax;
        if (oh > 23 || om > 59)
            return "invalid time zone offset in " + quoted(text);
        offset = (zone[0] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
    }
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, int(month)))
        return "invalid date in " + quoted(text);
    if (hour > 23 || minute > 59 || second > 60)
        return "invalid time of day in " + quoted(text);
    int64_t seconds = daysFromCivil(year, int(month), int(day)) * 86400 + hour * 3600 + minute * 60 + second - offset;
    // int64 nanoseconds reach from 1677 to 2262.
    if (seconds <= -9223372036 || seconds >= 9223372036)
        return "time " + quoted(text) + " is out of range (years 1678 to 2261)";
    ns = seconds * 1000000000 + fraction;
    return {};
}

std::string formatTime(int64_t ns)
{
    int64_t seconds = ns / 1000000000;
    int64_t fraction = ns % 1000000000;
    if (fraction < 0) {
        fraction += 1000000000;
        --seconds;
    }
    int64_t days = seconds / 86400;
    int64_t inDay = seconds % 86400;
    if (inDay < 0) {
        inDay += 86400;
        --days;
    }
    int64_t year;
    int month, day;
    civilFromDays(days, year, month, day);
    char buf[48];
    int n = std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d", static_cast<long long>(year), month,
                          day, int(inDay / 3600), int(inDay / 60 % 60), int(inDay % 60));
    if (fraction != 0)
        std::snprintf(buf + n, sizeof buf - size_t(n), ".%09lld", static_cast<long long>(fraction));
    return std::string(buf) + "Z";
}

std::string quoted(std::string_view text)
{
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned char>(c));
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

bool validId(std::string_view id)
{
    if (id.empty() || id.size() > 64)
        return false;
    for (char c : id) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_'
               || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

uint32_t fnv1a32(std::string_view text)
{
    uint32_t h = 2166136261u;
    for (char c : text) {
        h ^= static_cast<unsigned char>(c);
        h *= 16777619u;
    }
    return h;
}

}  // namespace fields

uint32_t ruleNumericId(const std::string& id) { return fields::fnv1a32(id); }
uint32_t redirectorNumericId(const std::string& id) { return fields::fnv1a32(id); }

}  // namespace redirect::engine

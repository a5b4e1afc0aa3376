// Syntax of the rules file's string fields (endpoints, CIDRs, port lists,
// RFC 3339 times), shared by the parser, the JSON writer and the compiler.
// Internal to the engine: callers use rules.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rules.h"

namespace redirect::engine::fields {

// Each parse function returns an error message, empty on success.

/// "127.0.0.1:15002" or "[::1]:15002"; port 1-65535.
std::string parseEndpoint(std::string_view text, Endpoint& out);

/// "10.0.0.0/8", "2001:db8::/32", or a bare address (/32, /128); host bits must be zero.
std::string parseCidr(std::string_view text, Cidr& out);

/// One port, 1-65535.
std::string checkPort(int64_t port, uint16_t& out);

/// "80,443,8000-8999": ranges appended to out.
std::string parsePortList(std::string_view text, std::vector<PortRange>& out);

/// "80,443,8000-8999"
std::string formatPorts(const std::vector<PortRange>& ports);

/// RFC 3339 ("2026-12-31T00:00:00Z", "2026-12-31T02:00:00.5+02:00") to ns since the epoch.
std::string parseTime(std::string_view text, int64_t& ns);

/// ns since the epoch as RFC 3339 in UTC, with a fraction only when there is one.
std::string formatTime(int64_t ns);

/// text in double quotes for a message, with quotes, backslashes and control characters escaped.
std::string quoted(std::string_view text);

/// ids: [A-Za-z0-9._-]{1,64}
bool validId(std::string_view id);

uint32_t fnv1a32(std::string_view text);

}  // namespace redirect::engine::fields

// The DNS peek of the UDP relay: the name a query asks for, read defensively (RFC 1035 4.1).
#include <cstdint>
#include <string>
#include <string_view>

#include "udp_relay.h"

namespace redirect::engine {

std::string peekDnsQueryName(std::string_view bytes)
{
    constexpr size_t kHeader = 12;
    constexpr size_t kMaxName = 255;  // wire length, length octets and the root included
    if (bytes.size() < kHeader)
        return {};
    auto u8 = [&](size_t at) { return static_cast<uint8_t>(bytes[at]); };
    // QR = 0 (a query), opcode 0 (standard), exactly one question: anything else is not what
    // the report's host column means.
    if ((u8(2) & 0x80) != 0 || ((u8(2) >> 3) & 0x0f) != 0)
        return {};
    if (u8(4) != 0 || u8(5) != 1)
        return {};
    std::string name;
    size_t at = kHeader;
    for (;;) {
        if (at >= bytes.size())
            return {};
        const uint8_t len = u8(at);
        if (len == 0)
            break;
        // 0xC0: a compression pointer; 0x40, 0x80: reserved label types. A query's one name has
        // nothing before it to point to, so a pointer is as malformed as the reserved types.
        if (len > 63)
            return {};
        if (at + 1 + len > bytes.size() || at + 1 + len - kHeader + 1 > kMaxName)
            return {};
        if (!name.empty())
            name += '.';
        for (size_t i = at + 1; i < at + 1 + len; ++i) {
            const char c = bytes[i];
            // Printable ASCII only: the name goes into reports and terminals as text.
            if (c <= 0x20 || c >= 0x7f)
                return {};
            name += c;
        }
        at += 1 + len;
    }
    // QTYPE and QCLASS follow the name; a question cut short is not a question.
    if (at + 1 + 4 > bytes.size() || name.empty())
        return {};
    return name;
}

}  // namespace redirect::engine

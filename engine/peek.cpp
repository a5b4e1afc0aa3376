#include "peek.h"

#include <cctype>
#include <cstdint>

namespace redirect::engine {

namespace {

// Bounds-checked big-endian reader over the peeked bytes.
struct Reader {
    std::string_view b;
    size_t pos = 0;
    bool ok = true;
    uint32_t take(size_t n)
    {
        if (!ok || pos + n > b.size()) {
            ok = false;
            return 0;
        }
        uint32_t v = 0;
        for (size_t i = 0; i < n; ++i)
            v = (v << 8) | static_cast<uint8_t>(b[pos + i]);
        pos += n;
        return v;
    }
    void skip(size_t n)
    {
        if (!ok || pos + n > b.size())
            ok = false;
        else
            pos += n;
    }
};

bool printableName(std::string_view s)
{
    if (s.empty() || s.size() > 253)
        return false;
    for (unsigned char c : s)
        if (!(std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']'))
            return false;
    return true;
}

std::string tlsServerName(std::string_view bytes)
{
    Reader r{bytes};
    if (r.take(1) != 0x16)  // handshake record
        return {};
    r.skip(2);              // record version
    r.take(2);              // record length (the hello may be cut by the peek: read what is there)
    if (r.take(1) != 0x01)  // ClientHello
        return {};
    r.skip(3 + 2 + 32);     // length, version, random
    r.skip(r.take(1));      // session id
    r.skip(r.take(2));      // cipher suites
    r.skip(r.take(1));      // compression methods
    size_t extEnd = r.take(2);
    extEnd += r.pos;
    while (r.ok && r.pos + 4 <= extEnd) {
        uint32_t type = r.take(2);
        uint32_t len = r.take(2);
        if (type != 0) {  // not server_name
            r.skip(len);
            continue;
        }
        r.take(2);  // list length
        if (r.take(1) != 0)  // host_name
            return {};
        uint32_t nameLen = r.take(2);
        if (!r.ok || r.pos + nameLen > bytes.size())
            return {};
        std::string_view name = bytes.substr(r.pos, nameLen);
        return printableName(name) ? std::string(name) : std::string();
    }
    return {};
}

std::string httpHost(std::string_view bytes)
{
    // Request line first: METHOD SP target SP HTTP/1.x
    size_t sp = bytes.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 16)
        return {};
    for (size_t i = 0; i < sp; ++i)
        if (!std::isupper(static_cast<unsigned char>(bytes[i])))
            return {};
    size_t pos = bytes.find("\r\n");
    while (pos != std::string_view::npos) {
        size_t start = pos + 2;
        size_t end = bytes.find("\r\n", start);
        if (end == std::string_view::npos || end == start)
            return {};  // header cut by the peek, or end of headers
        std::string_view line = bytes.substr(start, end - start);
        if (line.size() > 5 && (line[0] == 'H' || line[0] == 'h') &&
            std::tolower(static_cast<unsigned char>(line[1])) == 'o' &&
            std::tolower(static_cast<unsigned char>(line[2])) == 's' &&
            std::tolower(static_cast<unsigned char>(line[3])) == 't' && line[4] == ':') {
            std::string_view v = line.substr(5);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
                v.remove_prefix(1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
                v.remove_suffix(1);
            return printableName(v) ? std::string(v) : std::string();
        }
        pos = end;
    }
    return {};
}

}  // namespace

std::string peekHost(std::string_view bytes)
{
    if (bytes.empty())
        return {};
    if (static_cast<uint8_t>(bytes[0]) == 0x16)
        return tlsServerName(bytes);
    return httpHost(bytes);
}

}  // namespace redirect::engine

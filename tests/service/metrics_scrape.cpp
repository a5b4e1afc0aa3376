#include "metrics_scrape.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace redirect::test {

namespace {

std::string decodeChunked(const std::string& body)
{
    std::string out;
    size_t at = 0;
    while (at < body.size()) {
        size_t eol = body.find("\r\n", at);
        if (eol == std::string::npos)
            break;
        size_t size = std::strtoul(body.substr(at, eol - at).c_str(), nullptr, 16);
        if (size == 0)
            break;
        out += body.substr(eol + 2, size);
        at = eol + 2 + size + 2;
    }
    return out;
}

}  // namespace

HttpReply httpGet(uint16_t port, const std::string& target, int timeoutMs)
{
    HttpReply reply;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
        reply.error = std::string("connect: ") + std::strerror(errno);
        if (fd >= 0)
            ::close(fd);
        return reply;
    }
    std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                          "\r\nConnection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
        reply.error = std::string("send: ") + std::strerror(errno);
        ::close(fd);
        return reply;
    }
    std::string raw;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            reply.error = "no complete reply in " + std::to_string(timeoutMs) + " ms";
            ::close(fd);
            return reply;
        }
        char buf[16384];
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        raw.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    size_t headEnd = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.", 0) != 0 || headEnd == std::string::npos) {
        reply.error = "not an HTTP reply: " + raw.substr(0, 200);
        return reply;
    }
    reply.status = std::atoi(raw.c_str() + 9);
    std::string head = raw.substr(0, headEnd);
    reply.body = raw.substr(headEnd + 4);
    for (char& c : head)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (head.find("transfer-encoding: chunked") != std::string::npos)
        reply.body = decodeChunked(reply.body);
    return reply;
}

std::map<std::string, double> parseExposition(const std::string& text)
{
    std::map<std::string, double> samples;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] == '#')
            continue;
        // Label values may hold spaces ("Web inspector"); the value is the last field.
        size_t space = line.rfind(' ');
        if (space == std::string::npos)
            continue;
        samples[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
    }
    return samples;
}

std::string urlEncoded(const std::string& text)
{
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace redirect::test

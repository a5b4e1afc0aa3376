// The engine's end-to-end tests' parts: an echo server, rules from text, an engine in the sandbox,
// ended flows collected with a bounded wait, and a client that sends random bytes and checks the
// echo (or resets half-way).
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QtGlobal>

#include "engine.h"
#include "kernel_test.h"

namespace redirect::test {

// Streams back whatever it reads; half-close travels back.
class EchoServer {
public:
    EchoServer()
    {
        fd_ = listenLoopback(AF_INET, &port_);
        thread_ = std::thread([this] {
            for (;;) {
                int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c < 0)
                    return;
                std::thread([c] {
                    char buf[65536];
                    for (ssize_t n; (n = ::read(c, buf, sizeof(buf))) > 0;)
                        if (::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n)
                            break;
                    ::shutdown(c, SHUT_WR);
                    ::close(c);
                }).detach();
            }
        });
    }
    ~EchoServer()
    {
        ::shutdown(fd_, SHUT_RDWR);
        thread_.join();
        ::close(fd_);
    }
    uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    uint16_t port_ = 0;
    std::thread thread_;
};

inline engine::RuleSet rulesFor(const std::string& text)
{
    engine::RulesResult r = engine::parseRules(text);
    if (!r.ok())
        qFatal("rules: %s", r.error.str().c_str());
    return r.rules;
}

inline std::string chainRules(const std::string& ports)  // "80" or "80,443"
{
    return R"({"version":1,"redirectors":[{"id":"a","name":"A"},{"id":"b","name":"B"}],
      "rules":[{"id":"ra","action":"redirect","redirector":"a","ports":")" +
           ports + R"("},{"id":"rb","action":"redirect","redirector":"b","ports":")" + ports + R"("}]})";
}
inline std::string chainRules(uint16_t port) { return chainRules(std::to_string(port)); }

inline std::unique_ptr<engine::Engine> startEngine(int connectTimeoutMs = 5000, bool inProcessChains = true)
{
    engine::EngineOptions o;
    o.inProcessChains = inProcessChains;
    o.cgroup = sandbox().cgroup();
    o.instance = instanceName();
    o.workers = 2;
    o.connectTimeoutMs = connectTimeoutMs;
    o.repairOwnRecords = false;  // the test process is also the application
    return std::make_unique<engine::Engine>(o);
}

// Collect ended flows (bounded wait) until `count` have ended.
inline std::map<uint64_t, engine::Flow> waitEnded(engine::Engine& eng, size_t count, int timeoutMs = 30000)
{
    std::map<uint64_t, engine::Flow> ended;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    std::vector<engine::Flow> batch;
    while (ended.size() < count && std::chrono::steady_clock::now() < deadline) {
        batch.clear();
        eng.drainFlows(batch);
        for (auto& f : batch)
            if (f.endNs)
                ended[f.flowId] = f;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return ended;
}

struct ClientResult {
    uint64_t sent = 0;
    uint64_t received = 0;
    bool aborted = false;
    bool ok = true;
};

// One client: send `size` random bytes, then either half-close and read the echo
// back in full, or (abort) close with a reset half-way.
inline ClientResult runClient(uint16_t port, size_t size, bool abort, std::mt19937& rng)
{
    ClientResult r;
    r.aborted = abort;
    int fd = connectLoopback(AF_INET, port);
    if (fd < 0) {
        r.ok = false;
        return r;
    }
    std::vector<char> data(size);
    for (auto& c : data)
        c = static_cast<char>(rng());
    size_t limit = abort ? size / 2 : size;
    std::vector<char> back;
    back.reserve(size);
    char buf[65536];
    size_t off = 0;
    while (off < limit) {
        // Interleave writes and reads so neither side's buffers fill up.
        ssize_t w = ::send(fd, data.data() + off, std::min<size_t>(limit - off, 32768), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            off += static_cast<size_t>(w);
        else if (w < 0 && errno != EAGAIN) {
            r.ok = false;
            break;
        }
        ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            back.insert(back.end(), buf, buf + n);
        if (w <= 0 && n <= 0) {
            pollfd p{fd, POLLIN | POLLOUT, 0};
            ::poll(&p, 1, 1000);
        }
    }
    r.sent = off;
    if (abort) {
        linger lg{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        ::close(fd);
        return r;
    }
    ::shutdown(fd, SHUT_WR);
    for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
        back.insert(back.end(), buf, buf + n);
    ::close(fd);
    r.received = back.size();
    r.ok = r.ok && back.size() == data.size() && std::equal(back.begin(), back.end(), data.begin());
    return r;
}

}  // namespace redirect::test

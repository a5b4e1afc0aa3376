// A UDP redirector in its own process that uses nothing but the public SDK (redirect/sio.h), as a
// vendor's proxy would: one socket on 127.0.0.1, recvfrom(), redirect_udp_query() for the context
// and records of each new source, an upstream socket per source with the records SET before its
// first datagram and connected to the original destination, replies relayed back to the source.
//   udp_test_proxy [--port P] [--skip-set]
// Prints "PORT <udp port> FD <descriptor>" once listening: an engine whose external redirector
// names that endpoint finds the socket, checks who holds it and marks it (as it verifies external
// TCP listeners). On SIGTERM/SIGINT prints one line per flow and exits 0:
//   FLOW source=A flow=ID hops=ID:STATE,ID:STATE up=N down=N bytes_up=N bytes_down=N
// A source it cannot learn (ENOENT: not redirected here) is dropped and counted on stderr.
// Its sockets get 4 MiB buffers (root may exceed rmem_max): a test's loss is then not its own.
// --skip-set forgets the SET, as a proxy that does not cooperate would (the callout repairs it).
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redirect/sio.h"

namespace {

void roomy(int fd)
{
    int bytes = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes));
}

int64_t nowNs()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// The engine's rule: a source quiet this long may have become a new flow (its rule's idle timeout
// ran out, or its socket closed and another took the port), so its next datagram is asked again.
constexpr int64_t kRecheckNs = 1000000000;

std::string addressText(const sockaddr_storage& ss)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        auto& a = reinterpret_cast<const sockaddr_in&>(ss);
        inet_ntop(AF_INET, &a.sin_addr, host, sizeof(host));
        return std::string(host) + ":" + std::to_string(ntohs(a.sin_port));
    }
    auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof(host));
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a.sin6_port));
}

struct Flow {
    sockaddr_storage source{};
    socklen_t sourceLen = 0;
    int upstream = -1;
    redirect_records_info records{};
    uint64_t up = 0, down = 0, bytesUp = 0, bytesDown = 0;
    int64_t lastClientNs = 0;
    ~Flow()
    {
        if (upstream >= 0)
            ::close(upstream);
    }
    std::string line() const
    {
        std::string hops;
        for (unsigned i = 0; i < records.hop_count; ++i)
            hops += (i ? "," : "") + std::to_string(records.hops[i].redirector_id) + ":" +
                    redirect_state_name(records.hops[i].state);
        return "FLOW source=" + addressText(source) + " flow=" + std::to_string(records.flow_id) + " hops=" + hops +
               " up=" + std::to_string(up) + " down=" + std::to_string(down) + " bytes_up=" + std::to_string(bytesUp) +
               " bytes_down=" + std::to_string(bytesDown);
    }
};

class Proxy {
public:
    Proxy(uint16_t port, bool skipSet) : skipSet_(skipSet) { listen(port); }
    ~Proxy()
    {
        if (sock_ >= 0)
            ::close(sock_);
    }
    int sock() const { return sock_; }
    uint16_t port() const { return port_; }
    std::string error() const { return error_; }

    // Relay until a signal arrives on `signalFd`.
    void run(int signalFd)
    {
        std::vector<pollfd> fds;
        std::vector<Flow*> owners;
        char buf[65536];
        for (;;) {
            fds.assign({{signalFd, POLLIN, 0}, {sock_, POLLIN, 0}});
            owners.assign(2, nullptr);
            for (auto& [key, f] : live_) {
                fds.push_back({f->upstream, POLLIN, 0});
                owners.push_back(f.get());
            }
            if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) {
                std::fprintf(stderr, "udp_test_proxy: poll: %s\n", std::strerror(errno));
                return;
            }
            if (fds[0].revents)
                return;
            if (fds[1].revents)
                fromClients(buf, sizeof(buf));
            for (size_t i = 2; i < fds.size(); ++i)
                if (fds[i].revents)
                    fromUpstream(*owners[i], buf, sizeof(buf));
        }
    }

    void report()
    {
        for (const auto& f : ended_)
            std::printf("%s\n", f->line().c_str());
        for (const auto& [key, f] : live_)
            std::printf("%s\n", f->line().c_str());
        if (dropped_)
            std::fprintf(stderr, "udp_test_proxy: %llu datagrams from unknown sources dropped (last: %s)\n",
                         static_cast<unsigned long long>(dropped_), std::strerror(lastError_));
        std::fflush(stdout);
    }

private:
    void listen(uint16_t port)
    {
        sock_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // the SDK needs a bound address, not a wildcard
        socklen_t len = sizeof(a);
        if (sock_ < 0 || ::bind(sock_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            ::getsockname(sock_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            error_ = std::string("cannot listen on 127.0.0.1:") + std::to_string(port) + ": " + std::strerror(errno);
            return;
        }
        port_ = ntohs(a.sin_port);
        roomy(sock_);
    }

    void fromClients(char* buf, size_t size)
    {
        for (int i = 0; i < 64; ++i) {  // a batch, then the replies get their turn
            sockaddr_storage from{};
            socklen_t len = sizeof(from);
            // The source is what the SDK's query needs: recv() without it would tell nothing.
            ssize_t n = ::recvfrom(sock_, buf, size, 0, reinterpret_cast<sockaddr*>(&from), &len);
            const int64_t now = nowNs();
            if (n < 0)
                return;
            Flow* f = flowFor(from, len, now);
            if (!f)
                continue;
            f->lastClientNs = now;
            if (::send(f->upstream, buf, size_t(n), 0) == n) {
                ++f->up;
                f->bytesUp += uint64_t(n);
            }
        }
    }

    void fromUpstream(Flow& f, char* buf, size_t size)
    {
        for (int i = 0; i < 64; ++i) {
            ssize_t n = ::recv(f.upstream, buf, size, MSG_DONTWAIT);
            if (n < 0)
                return;
            if (::sendto(sock_, buf, size_t(n), 0, reinterpret_cast<const sockaddr*>(&f.source), f.sourceLen) == n) {
                ++f.down;
                f.bytesDown += uint64_t(n);
            }
        }
    }

    bool query(const sockaddr_storage& from, socklen_t len, int option, std::vector<uint8_t>& blob)
    {
        blob.resize(REDIRECT_CONTEXT_HEADER_SIZE + REDIRECT_CONTEXT_DATA_MAX);
        size_t bytes = 0;
        if (redirect_udp_query(sock_, reinterpret_cast<const sockaddr*>(&from), len, option, blob.data(), blob.size(),
                               &bytes) != 0) {
            ++dropped_;
            lastError_ = errno;
            return false;
        }
        blob.resize(bytes);
        return true;
    }

    Flow* flowFor(const sockaddr_storage& from, socklen_t len, int64_t now)
    {
        std::string key(reinterpret_cast<const char*>(&from), len);
        std::vector<uint8_t> records, context;
        auto it = live_.find(key);
        if (it != live_.end()) {
            Flow& f = *it->second;
            if (now - f.lastClientNs < kRecheckNs)
                return &f;
            redirect_records_info info{};
            if (!query(from, len, IP_WFP_REDIRECT_RECORDS, records) ||
                redirect_records_decode(records.data(), records.size(), &info) != 0 ||
                info.flow_id == f.records.flow_id)
                return &f;
            ended_.push_back(std::move(it->second));  // the callout gave the source a new flow
            live_.erase(it);
        }
        if ((records.empty() && !query(from, len, IP_WFP_REDIRECT_RECORDS, records)) ||
            !query(from, len, IP_WFP_REDIRECT_CONTEXT, context))
            return nullptr;
        auto f = std::make_unique<Flow>();
        f->source = from;
        f->sourceLen = len;
        sockaddr_storage to{};
        socklen_t toLen = 0;
        size_t consumed = 0;
        if (redirect_records_decode(records.data(), records.size(), &f->records) != 0 ||
            redirect_context_destination(context.data(), context.size(), &to, &toLen) != 0) {
            std::fprintf(stderr, "udp_test_proxy: undecodable blobs from %s: %s\n", addressText(from).c_str(),
                         std::strerror(errno));
            return nullptr;
        }
        // SET before the first datagram (Windows: IP_WFP_REDIRECT_RECORDS on it), then connect: the
        // callout sees our hop in the records and lets the datagram go to the destination.
        f->upstream = ::socket(to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (f->upstream < 0 ||
            (!skipSet_ && redirect_ioctl(f->upstream, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, records.data(),
                                         records.size(), nullptr, 0, &consumed, nullptr, nullptr) != 0) ||
            ::connect(f->upstream, reinterpret_cast<const sockaddr*>(&to), toLen) != 0) {
            std::fprintf(stderr, "udp_test_proxy: flow from %s to %s not started: %s\n", addressText(from).c_str(),
                         addressText(to).c_str(), std::strerror(errno));
            return nullptr;
        }
        roomy(f->upstream);
        f->lastClientNs = now;
        return (live_[key] = std::move(f)).get();
    }

    bool skipSet_ = false;
    int sock_ = -1;
    uint16_t port_ = 0;
    std::string error_;
    std::map<std::string, std::unique_ptr<Flow>> live_;  // by source address
    std::vector<std::unique_ptr<Flow>> ended_;
    uint64_t dropped_ = 0;
    int lastError_ = 0;
};

}  // namespace

int main(int argc, char** argv)
{
    uint16_t port = 0;
    bool skipSet = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--port" && i + 1 < argc) {
            port = static_cast<uint16_t>(std::stoul(argv[++i]));
        } else if (a == "--skip-set") {
            skipSet = true;
        } else {
            std::fprintf(stderr, "usage: udp_test_proxy [--port P] [--skip-set]\n");
            return 2;
        }
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    int signals = ::signalfd(-1, &set, SFD_CLOEXEC);
    Proxy proxy(port, skipSet);
    if (signals < 0 || !proxy.error().empty()) {
        std::fprintf(stderr, "udp_test_proxy: %s\n", signals < 0 ? std::strerror(errno) : proxy.error().c_str());
        return 1;
    }
    std::printf("PORT %u FD %d\n", proxy.port(), proxy.sock());
    std::fflush(stdout);
    proxy.run(signals);
    proxy.report();
    ::close(signals);
    return 0;
}

// Connect latency as an application sees it: N sequential rounds of connect() to
// 127.0.0.1:PORT, a tiny HTTP request, and the first byte of the answer
// (bench_server's http mode), each round timed from the start of connect() to
// that first byte. Through a redirector, that time includes the proxy's accept,
// its queries, its own connect upstream and both relays, which is what one hop
// adds. run_bench.sh runs it direct and through each engine case in the same run.
//   bench_latency PORT ROUNDS [WARMUP]
// Prints one line: rounds=N p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
// (nearest-rank percentiles of the sorted samples; the WARMUP rounds before them,
// default 200, are not recorded, so cold caches and the first accepts do not
// count). Not a pass/fail test; exits 1 with the failing call and its reason.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(int round, const char* call, int err)
{
    std::fprintf(stderr, "bench_latency: round %d: %s: %s\n", round, call, std::strerror(err));
    std::exit(1);
}

// One round; returns connect() start to first response byte in microseconds.
double timedRound(const sockaddr_in& addr, int index)
{
    static const char request[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail(index, "socket", errno);
    const auto start = Clock::now();
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
        fail(index, "connect", errno);
    if (::send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(request) - 1))
        fail(index, "send", errno);
    char buf[512];
    ssize_t n = ::recv(fd, buf, 1, 0);
    const auto first = Clock::now();
    if (n <= 0)
        fail(index, n == 0 ? "recv (closed before answering)" : "recv", n == 0 ? ECONNRESET : errno);
    // Read to the end, so that the relay has finished this flow before the next round starts
    // and the server's close, not ours, leaves the TIME_WAIT.
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
    }
    if (n < 0)
        fail(index, "recv (rest)", errno);
    ::close(fd);
    return std::chrono::duration<double, std::micro>(first - start).count();
}

// Nearest rank: the smallest sample with at least p of all samples at or below it.
double percentile(const std::vector<double>& sorted, double p)
{
    size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

bool parse(const char* text, long low, long high, long* out)
{
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < low || v > high)
        return false;
    *out = v;
    return true;
}

}  // namespace

int main(int argc, char** argv)
{
    long port = 0, rounds = 0, warmup = 200;
    if (argc < 3 || argc > 4 || !parse(argv[1], 1, 65535, &port) || !parse(argv[2], 1, 10'000'000, &rounds) ||
        (argc == 4 && !parse(argv[3], 0, 10'000'000, &warmup))) {
        std::fprintf(stderr, "usage: bench_latency PORT(1-65535) ROUNDS(>0) [WARMUP(>=0), default 200]\n");
        return 2;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    for (long i = 0; i < warmup; ++i)
        timedRound(addr, static_cast<int>(i));
    std::vector<double> samples;
    samples.reserve(static_cast<size_t>(rounds));
    for (long i = 0; i < rounds; ++i)
        samples.push_back(timedRound(addr, static_cast<int>(warmup + i)));
    std::sort(samples.begin(), samples.end());
    std::printf("rounds=%ld p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n", rounds,
                percentile(samples, 0.50), percentile(samples, 0.90), percentile(samples, 0.99),
                percentile(samples, 0.999), samples.back());
    return 0;
}

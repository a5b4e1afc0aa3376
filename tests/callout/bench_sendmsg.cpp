// Per-sendto() cost of the callout on unconnected UDP sockets that no rule matches, measured in one
// run inside the sandbox like bench_connect: without the callout, with it attached (a later
// datagram of a decided flow: one storage lookup and a comparison), and for a new socket per
// datagram (socket + sendto + close: every datagram is a flow's first and walks the rules).
// Prints microseconds per datagram and the added cost; not a pass/fail test.
//   bench_sendmsg [datagrams per round] [rounds]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <unistd.h>

#include "callout_loader.h"
#include "sandbox.h"
#include "supervisor.h"

using namespace redirect;
using namespace redirect::test;

namespace {

void moveSelf(const std::string& cgroup)
{
    FILE* f = std::fopen((cgroup + "/cgroup.procs").c_str(), "w");
    if (!f || std::fprintf(f, "%d", ::getpid()) < 0 || std::fclose(f) != 0)
        throw std::runtime_error("cannot move into " + cgroup);
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int boundUdp(uint16_t* port)
{
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sin), len) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0)
        throw std::runtime_error(std::string("bind UDP: ") + std::strerror(errno));
    *port = ntohs(sin.sin_port);
    return fd;
}

void drain(int sink)
{
    char buf[64];
    while (::recv(sink, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
}

// Microseconds per datagram to `port` (the sink drained as it goes, so none is dropped);
// a fresh socket per datagram when `fresh`, else one socket for all (created in the current cgroup).
double round(int sink, uint16_t port, int count, bool fresh)
{
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    int shared = fresh ? -1 : ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < count; ++i) {
        int fd = fresh ? ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0) : shared;
        if (::sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 1) {
            std::fprintf(stderr, "sendto failed: %s\n", std::strerror(errno));
            std::exit(1);
        }
        if (fresh)
            ::close(fd);
        if ((i & 63) == 63)
            drain(sink);
    }
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / count;
    if (shared >= 0)
        ::close(shared);
    drain(sink);
    return us;
}

}  // namespace

int main(int argc, char** argv)
{
    int count = argc > 1 ? std::atoi(argv[1]) : 20000;
    int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
    if (count <= 0 || rounds <= 0) {
        std::fprintf(stderr, "usage: bench_sendmsg [datagrams per round > 0] [rounds > 0]\n");
        return 2;
    }
    try {
        // As bench_connect: the callout covers "covered" only; sockets belong to the cgroup they
        // were created in. The supervisor removes the sandbox cgroup and the pins at the end.
        SupervisedTest made = superviseTest();
        Sandbox sandbox(made.cgroup);
        std::string plain = sandbox.makeChildCgroup("plain");
        std::string covered = sandbox.makeChildCgroup("covered");
        Callout callout({covered, made.instance});
        uint16_t sinkPort = 0, otherPort = 0;
        int sink = boundUdp(&sinkPort);
        int other = boundUdp(&otherPort);
        callout_redirector rd = makeRedirector(1, 0, 0, 0, sandbox.netnsCookie());
        rd.udp_port4 = htons(otherPort);
        callout.setRedirector(0, rd);
        // A UDP rule for another port: every datagram here is classified and matches nothing.
        callout_rule rule = makeRedirectRule(1, 0, otherPort, otherPort);
        rule.protocol = IPPROTO_UDP;
        callout.setRules({&rule, 1});
        std::atomic<bool> done{false};
        callout.setEventHandler([](const callout_event&) {});
        std::thread drainer([&] {
            while (!done)
                callout.pollEvents(100);
        });

        std::vector<double> base, known, baseFresh, first;
        for (int r = 0; r < rounds; ++r) {
            moveSelf(plain);
            base.push_back(round(sink, sinkPort, count, false));
            baseFresh.push_back(round(sink, sinkPort, count, true));
            moveSelf(covered);
            known.push_back(round(sink, sinkPort, count, false));
            first.push_back(round(sink, sinkPort, count, true));
        }
        done = true;
        drainer.join();
        moveSelf(plain);
        ::close(sink);
        ::close(other);
        double b = median(base), k = median(known), bf = median(baseFresh), f = median(first);
        std::printf("per-datagram cost, unconnected UDP on loopback, no rule matches (median of %d rounds x %d)\n",
                    rounds, count);
        std::printf("%-44s %10s %10s %10s\n", "case", "us/dgram", "ratio", "added us");
        std::printf("%-44s %10.3f %10.3f %10s\n", "one socket, no callout (baseline)", b, 1.0, "-");
        std::printf("%-44s %10.3f %10.3f %10.3f\n", "one socket, callout (flow already decided)", k, k / b, k - b);
        std::printf("%-44s %10.3f %10.3f %10s\n", "socket+sendto+close, no callout (baseline)", bf, 1.0, "-");
        std::printf("%-44s %10.3f %10.3f %10.3f\n", "socket+sendto+close, callout (first datagram)", f, f / bf,
                    f - bf);
        auto stats = callout.stats();
        std::printf("classified %llu, event drops %llu\n", static_cast<unsigned long long>(stats[CALLOUT_STAT_CLASSIFIED]),
                    static_cast<unsigned long long>(stats[CALLOUT_STAT_EVENT_DROPS]));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_sendmsg: %s\n", e.what());
        return 1;
    }
    return 0;
}

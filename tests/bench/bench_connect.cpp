// Per-connect() cost of the callout, measured in one run inside the sandbox:
// a loop of loopback connect/accept/close without the callout, with the
// callout attached and no rule matching (classification only), and with a
// rule redirecting every connect to a listener (the redirect path, including
// the sockops hand-off). Prints microseconds per connect and ratios to the
// baseline measured in the same run. Not a pass/fail test.
//   bench_connect [connects per round] [rounds]
#include <algorithm>
#include <atomic>
#include <thread>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <unistd.h>

#include "callout_loader.h"
#include "sandbox.h"
#include "supervisor.h"

using namespace redirect;
using namespace redirect::test;

namespace {

// Microseconds per connect+accept+close cycle against `listener`, connecting to `port`.
double cycle(int listener, uint16_t port, int count)
{
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < count; ++i) {
        int c = connectLoopback(AF_INET, port);
        if (c < 0) {
            std::fprintf(stderr, "connect failed: %s\n", strerror(-c));
            std::exit(1);
        }
        int a = ::accept(listener, nullptr, nullptr);
        ::close(c);
        ::close(a);
    }
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / count;
}

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

}  // namespace

int main(int argc, char** argv)
{
    int count = argc > 1 ? std::atoi(argv[1]) : 20000;
    int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
    if (count <= 0 || rounds <= 0) {
        std::fprintf(stderr, "usage: bench_connect [connects per round > 0] [rounds > 0]\n");
        return 2;
    }
    try {
        // Two cgroups in one sandbox: the callout covers only "covered"; the process moves
        // between them, and sockets belong to the cgroup they were created in. The supervisor
        // removes the sandbox cgroup and the instance's pin when the benchmark ends.
        SupervisedTest made = superviseTest();
        Sandbox sandbox(made.cgroup);
        std::string plain = sandbox.makeChildCgroup("plain");
        std::string covered = sandbox.makeChildCgroup("covered");
        Callout callout({covered, made.instance});

        uint16_t basePort = 0, destPort = 0, proxyPort = 0;
        moveSelf(plain);
        int baseListener = listenLoopback(AF_INET, &basePort);
        moveSelf(covered);
        int destListener = listenLoopback(AF_INET, &destPort);
        int proxyListener = listenLoopback(AF_INET, &proxyPort);
        callout.setRedirector(0, makeRedirector(1, proxyPort, 0, 0, sandbox.netnsCookie()));
        // The rule matches destPort only: baseline and classify connects match no rule.
        callout_rule rule = makeRedirectRule(1, 0, destPort, destPort);
        callout.setRules({&rule, 1});

        // Consume events as the engine would, so the measured path includes real submits.
        std::atomic<bool> done{false};
        std::atomic<uint64_t> consumed{0};
        callout.setEventHandler([&](const callout_event&) { consumed.fetch_add(1, std::memory_order_relaxed); });
        std::thread drainer([&] {
            while (!done)
                callout.pollEvents(100);
        });

        std::vector<double> base, classify, redirected;
        for (int r = 0; r < rounds; ++r) {
            // Interleaved per round, so drift hits all three alike.
            moveSelf(plain);
            base.push_back(cycle(baseListener, basePort, count));
            moveSelf(covered);
            rule.enabled = 0;
            callout.setRules({&rule, 1});
            classify.push_back(cycle(destListener, destPort, count));
            rule.enabled = 1;
            callout.setRules({&rule, 1});
            redirected.push_back(cycle(proxyListener, destPort, count));
        }
        done = true;
        drainer.join();
        double b0 = median(base), c0 = median(classify), r0 = median(redirected);
        std::printf("per-connect cost (connect+accept+close on loopback, median of %d rounds x %d)\n", rounds, count);
        std::printf("%-34s %10s %10s %10s\n", "case", "us/connect", "ratio", "added us");
        std::printf("%-34s %10.2f %10.3f %10s\n", "no callout (baseline)", b0, 1.0, "-");
        std::printf("%-34s %10.2f %10.3f %10.2f\n", "callout attached, no rule matches", c0, c0 / b0, c0 - b0);
        std::printf("%-34s %10.2f %10.3f %10.2f\n", "callout redirects to a listener", r0, r0 / b0, r0 - b0);
        auto stats = callout.stats();
        std::printf("events consumed %llu, classified %llu, redirected %llu, handoffs %llu, event drops %llu\n",
                    static_cast<unsigned long long>(consumed.load()),
                    static_cast<unsigned long long>(stats[CALLOUT_STAT_CLASSIFIED]),
                    static_cast<unsigned long long>(stats[CALLOUT_STAT_REDIRECTED]),
                    static_cast<unsigned long long>(stats[CALLOUT_STAT_HANDOFFS]),
                    static_cast<unsigned long long>(stats[CALLOUT_STAT_EVENT_DROPS]));
        moveSelf(plain);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_connect: %s\n", e.what());
        return 1;
    }
    return 0;
}

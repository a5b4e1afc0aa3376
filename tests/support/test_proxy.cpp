// A redirector in its own process, for chain tests that need distinct
// proxies (records repair is keyed by process). Prints "PORTS <v4> <v6>",
// then one "HOP ..." line per finished connection; stops on SIGTERM/SIGINT.
//   test_proxy --id N [--skip-set] [--port P]
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "redirect/sio.h"
#include "thread_redirector.h"

int main(int argc, char** argv)
{
    redirect::engine::RedirectorConfig config;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--id" && i + 1 < argc)
            config.id = static_cast<uint32_t>(std::stoul(argv[++i]));
        else if (a == "--skip-set")
            config.skipSet = true;
        else if (a == "--port" && i + 1 < argc)
            config.port4 = static_cast<uint16_t>(std::stoul(argv[++i]));
        else {
            std::fprintf(stderr, "usage: test_proxy --id N [--skip-set] [--port P]\n");
            return 2;
        }
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before threads start: they inherit the mask

    redirect::test::ThreadRedirector redirector(config, [](const redirect::engine::HopReport& hop) {
        std::printf("HOP records=%zu context=%zu set=%d reason=%s up=%llu down=%llu\n", hop.records.size(),
                    hop.context.size(), hop.setRecords ? 1 : 0, redirect::engine::endReasonName(hop.reason),
                    static_cast<unsigned long long>(hop.bytesUp), static_cast<unsigned long long>(hop.bytesDown));
        std::fflush(stdout);
    });
    std::printf("PORTS %u %u\n", redirector.port4(), redirector.port6());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    return 0;
}

// Owns a callout and one redirector in a separate process, so a test can
// SIGKILL it and check that the hooks vanish (fail-open).
//   callout_host --cgroup DIR --instance NAME --port P
// Redirects TCP to port P through its redirector; prints "READY <v4 port>".
#include <csignal>
#include <cstdio>
#include <string>

#include "callout_loader.h"
#include "thread_redirector.h"
#include "sandbox.h"

int main(int argc, char** argv)
{
    std::string cgroup, instance;
    uint16_t port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--cgroup")
            cgroup = argv[i + 1];
        else if (a == "--instance")
            instance = argv[i + 1];
        else if (a == "--port")
            port = static_cast<uint16_t>(std::stoul(argv[i + 1]));
    }
    if (cgroup.empty() || instance.empty() || port == 0) {
        std::fprintf(stderr, "usage: callout_host --cgroup DIR --instance NAME --port P\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    try {
        redirect::Callout callout({cgroup, instance});
        redirect::test::ThreadRedirector redirector({.id = 7});
        callout.setRedirector(0, redirect::test::makeRedirector(7, redirector.port4(), redirector.port6(),
                                                                 static_cast<uint32_t>(getpid()),
                                                                 redirect::Callout::currentNetnsCookie()));
        callout_rule rule = redirect::test::makeRedirectRule(1, 0, port, port);
        callout.setRules({&rule, 1});
        std::printf("READY %u\n", redirector.port4());
        std::fflush(stdout);
        int sig = 0;
        sigwait(&set, &sig);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "callout_host: %s\n", e.what());
        return 4;
    }
    return 0;
}

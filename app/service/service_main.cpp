// redirect-consoled: the service. Owns the callout and the engine, keeps redirecting with no console
// attached, and serves the control API (app/api/redirect_console.proto).
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include <pthread.h>

#include "command_line.h"
#include "service_run.h"

int main(int argc, char** argv)
{
    using namespace redirect::app;
    std::optional<CommandLine> cl;
    if (auto exitNow = readCommandLine(argc, argv, "redirect-consoled", &cl))
        return *exitNow;
    if (!cl->screenshot.empty()) {
        std::fprintf(stderr, "redirect-consoled: --screenshot is the console's (it needs a window)\n");
        return ExitBadInput;
    }
    // Taken synchronously by runService(); blocked before any thread starts (threads inherit it).
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGINT, SIGTERM, SIGHUP})
        sigaddset(&signals, s);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return runService(*cl);
}

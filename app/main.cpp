// redirect-console: the console with a display, the same engine headless without one.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <pthread.h>

#include "command_line.h"
#include "gui_main.h"
#include "headless.h"

int main(int argc, char** argv)
{
    using namespace redirect::app;
    std::vector<std::string> args(argv, argv + argc);
    std::string error;
    auto cl = parseCommandLine(args, &error);
    if (!cl) {
        std::fprintf(stderr, "redirect-console: %s\n", error.c_str());
        return ExitBadInput;
    }
    if (cl->help) {
        std::fputs(usage().c_str(), stdout);
        return ExitOk;
    }
    if (cl->version) {
        std::printf("redirect-console %s\n", REDIRECT_VERSION);
        return ExitOk;
    }
    // SIGINT and SIGTERM are taken synchronously, by sigtimedwait() headless and through a signalfd in
    // the GUI. Blocked here, before QApplication or the engine starts a thread: threads inherit the
    // mask, and one started earlier (Qt's X11 event thread) would leave the kernel a thread to kill
    // the whole process on, taking the demo cgroup, its web root and the window layout with it.
    sigset_t stopSignals;
    sigemptyset(&stopSignals);
    sigaddset(&stopSignals, SIGINT);
    sigaddset(&stopSignals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
    // A window when there is a display to show it on, else headless. QT_QPA_PLATFORM alone
    // (offscreen test runs) counts only for --screenshot, which needs a window.
    bool display = std::getenv("DISPLAY") || std::getenv("WAYLAND_DISPLAY") ||
                   (std::getenv("QT_QPA_PLATFORM") && !cl->screenshot.empty());
    if (cl->headless || !cl->checkRules.empty() || !display) {
        if (!cl->screenshot.empty()) {
            std::fprintf(stderr, "redirect-console: --screenshot needs a display (try xvfb-run)\n");
            return ExitBadInput;
        }
        return runHeadless(*cl);
    }
    return redirect::gui::runGui(argc, argv, *cl);
}

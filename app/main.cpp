// redirect-console: the console with a display, the same engine headless without one.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <pthread.h>
#include <unistd.h>

#include "command_line.h"
#include "gui_main.h"

namespace {

// redirect-consoled next to this program (build/bin, or the install's bin).
std::string serviceProgram()
{
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return (ec ? std::filesystem::path("/usr/local/bin") : self.parent_path()) / "redirect-consoled";
}

}  // namespace

int main(int argc, char** argv)
{
    using namespace redirect::app;
    std::optional<CommandLine> cl;
    if (auto exitNow = readCommandLine(argc, argv, "redirect-console", &cl))
        return *exitNow;
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
        // Headless is the service in the foreground, with the same arguments.
        const std::string service = serviceProgram();
        std::vector<char*> argvService{const_cast<char*>(service.c_str())};
        for (int i = 1; i < argc; ++i)
            argvService.push_back(argv[i]);
        argvService.push_back(nullptr);
        pthread_sigmask(SIG_UNBLOCK, &stopSignals, nullptr);  // the service blocks them itself
        ::execv(service.c_str(), argvService.data());
        std::fprintf(stderr, "redirect-console: cannot run %s: %s\n", service.c_str(), std::strerror(errno));
        return ExitRuntimeError;
    }
    return redirect::gui::runGui(argc, argv, *cl);
}

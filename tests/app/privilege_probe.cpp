// privilege_probe: the console's start-up and nothing after it, for tst_privilege. It runs what
// redirect-console runs before its window (startUp(): the service offer, the demo's service) and
// prints "ATTACH <node> <socket>" when a window would open; otherwise it exits with the console's
// code. With REDIRECT_PRIVILEGE_DRYRUN=1 the commands it would run are printed ("RUN ...") instead.
#include <cstdio>

#include <QApplication>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "command_line.h"
#include "service_offer.h"

int main(int argc, char** argv)
{
    std::optional<redirect::app::CommandLine> cl;
    if (auto exitNow = redirect::app::readCommandLine(argc, argv, "privilege_probe", &cl))
        return *exitNow;
    // stdout carries only what the console did; its log (warnings included) goes to stderr.
    spdlog::set_default_logger(spdlog::stderr_color_mt("probe"));
    QApplication app(argc, argv);
    const redirect::gui::StartUp start = redirect::gui::startUp(*cl);
    if (start.exitCode >= 0)
        return start.exitCode;
    std::printf("ATTACH %s %s\n", start.nodeName.c_str(), start.socket.c_str());
    return redirect::app::ExitOk;
}

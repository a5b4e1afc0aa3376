// redirect-console: the console with a display, the same engine headless without one.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "command_line.h"
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
    // TODO(issue 4): the Qt window when a display is there and --headless is not given.
    return runHeadless(*cl);
}

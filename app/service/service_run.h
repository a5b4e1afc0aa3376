// The service (redirect-consoled): the engine without a display, serving the control API. It is
// also what "headless" means: the console's --headless runs this program in the foreground.
#pragma once

#include "command_line.h"

namespace redirect::app {

/// Runs until --duration, SIGINT or SIGTERM (SIGHUP reloads the rules file and reopens the flow
/// log); returns an ExitCode.
int runService(const CommandLine& commandLine);

}  // namespace redirect::app

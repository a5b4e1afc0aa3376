// The engine without a display: for servers and scripts.
#pragma once

#include "command_line.h"

namespace redirect::app {

/// Runs headless until --duration, SIGINT or SIGTERM; returns an ExitCode.
int runHeadless(const CommandLine& commandLine);

}  // namespace redirect::app

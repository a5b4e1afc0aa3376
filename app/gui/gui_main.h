// The console with a window: the same engine as headless, watched through the bridge.
#pragma once

#include "command_line.h"

namespace redirect::gui {

/// Runs the Qt console; returns an app::ExitCode. Checks administrator rights before anything starts.
int runGui(int argc, char** argv, const app::CommandLine& commandLine);

}  // namespace redirect::gui

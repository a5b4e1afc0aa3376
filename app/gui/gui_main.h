// The console with a window: the same engine as headless, watched through the bridge.
#pragma once

#include "command_line.h"

namespace redirect::gui {

/// Runs the Qt console; returns an app::ExitCode. Needs no administrator rights: what it attaches to
/// is decided first (startUp(), service_offer.h).
/// SIGINT and SIGTERM must already be blocked in every thread (main() blocks them before any thread
/// exists); they are taken through a signalfd and shut the console down in order.
int runGui(int argc, char** argv, const app::CommandLine& commandLine);

}  // namespace redirect::gui

// What headless and GUI runs share: the rules file, the demo sandbox and the engine, started in
// that order and stopped in reverse.
#pragma once

#include <memory>

#include "command_line.h"
#include "demo.h"
#include "engine.h"

namespace redirect::app {

struct Session {
    std::unique_ptr<DemoSandbox> demo;
    std::unique_ptr<engine::Engine> engine;

    /// Reads and validates --rules (nothing to do without it). Returns ExitOk, or ExitBadInput after
    /// one line on stderr with the file, line and column. Callers that write files check first.
    int loadRules(const CommandLine& commandLine);
    /// Loads the rules unless loadRules() did (or takes the demo's), builds the demo sandbox, loads
    /// the callout and applies the rules. Returns ExitOk, or the exit code after one line on stderr
    /// saying why.
    int start(const CommandLine& commandLine);
    /// Stops traffic and the engine (the flow table stays readable until the Session goes).
    void stop();
    ~Session();

private:
    engine::RuleSet rules_;
    bool rulesLoaded_ = false;
};

}  // namespace redirect::app

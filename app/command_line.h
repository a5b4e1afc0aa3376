// Command line of redirect-console (GUI and headless share it).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace redirect::app {

/// Exit codes, documented in --help and the README.
enum ExitCode : int {
    ExitOk = 0,
    ExitRuntimeError = 1,
    ExitBadInput = 2,
    ExitNotAdministrator = 3,
    ExitCalloutFailed = 4,
};

struct CommandLine {
    bool help = false;
    bool version = false;
    bool headless = false;
    bool demo = false;
    std::string rules;          ///< --rules FILE
    std::string checkRules;     ///< --check-rules FILE
    std::string cgroup;         ///< --cgroup DIR ("" = whole machine)
    double duration = 0;        ///< --duration SECONDS (0 = until a signal)
    std::string jsonl;          ///< --jsonl FILE or "-"
    bool print = false;         ///< --print: flow and status lines on stdout even when it is no terminal
    double statusEvery = 5;     ///< --status-every SECONDS (0 = no status lines)
    bool quiet = false;         ///< --quiet: warnings and errors only, no flow or status lines
    int verbosity = 0;          ///< -v: 1 (debug log), -vv: 2 (trace log)
    std::string report;         ///< --report FILE (.csv, .json, .html)
    std::string screenshot;     ///< --screenshot FILE (GUI)
    std::string instance = "default";
    int workers = 0;
    bool inProcessChains = true; ///< --in-process-chains on|off
    int stallDeadlineMs = 1000; ///< --stall-deadline MS (0 = off)
    // The service (redirect-consoled)
    std::string apiSocket = "/run/redirect-console/api.sock";  ///< --api-socket PATH ("none": no API)
    std::string viewGroup = "redirect-view";                   ///< --view-group NAME
    std::string adminGroup = "redirect-admin";                 ///< --admin-group NAME
    std::string auditLog = "/var/log/redirect-console/audit.log";  ///< --audit-log FILE
    std::string metrics;        ///< --metrics ADDRESS:PORT (Prometheus text; "" = off)
    std::string listen;         ///< --listen ADDRESS:PORT: the API for remote consoles, mutual TLS only
    std::string tlsCert;        ///< --tls-cert FILE (PEM): this node's certificate
    std::string tlsKey;         ///< --tls-key FILE (PEM)
    std::string tlsCa;          ///< --tls-ca FILE (PEM): the CA whose client certificates are let in
    /// --history PATH|off: ended flows in SQLite (the systemd unit's StateDirectory). --demo with the
    /// default: a file of its own in the runtime directory, removed when it stops.
    std::string history = "/var/lib/redirect-console/history.sqlite";
    double historyDays = 7;     ///< --history-days N: flows that ended longer ago go
    double historyMaxMb = 256;  ///< --history-max-mb N: the database's size at most; the oldest go first
    /// --for-console (with --demo): the private service of the console that started it, directly or
    /// through pkexec. Its socket is /run/redirect-console/demo-console-<parent pid>.sock, the
    /// parent's user may change it, and it stops when the parent ends. No paths or values: pkexec
    /// authorizes the program, not its arguments.
    bool forConsole = false;
};

/// Parses argv; on error returns nullopt and sets `error` to one line for the user.
std::optional<CommandLine> parseCommandLine(const std::vector<std::string>& args, std::string* error);

/// main()'s first step: parses argv and answers --help and --version. Returns the exit code when
/// the program is done (bad option: one line on stderr, prefixed with `program`), else nullopt with
/// *out set.
std::optional<int> readCommandLine(int argc, char** argv, const char* program, std::optional<CommandLine>* out);

/// The --help text.
std::string usage();

/// Whether `option` is one that takes a value (--rules FILE, --workers N...).
bool optionTakesValue(const std::string& option);

/// Root, or CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN in the effective set.
bool isAdministrator();

}  // namespace redirect::app

#include "command_line.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <unistd.h>

#include "report.h"

namespace redirect::app {

namespace {

// Capability bits (linux/capability.h) without pulling libcap in.
constexpr int kCapNetAdmin = 12;
constexpr int kCapSysAdmin = 21;
constexpr int kCapBpf = 39;

// A positive number up to `max` (fractions allowed).
bool parsePositive(const std::string& text, double max, double* out)
{
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(text.c_str(), &end);
    if (errno || end == text.c_str() || *end || !std::isfinite(v) || v <= 0 || v > max)
        return false;
    *out = v;
    return true;
}

bool parseSeconds(const std::string& text, double* out) { return parsePositive(text, 365.0 * 24 * 3600, out); }

}  // namespace

bool optionTakesValue(const std::string& option)
{
    static const char* const kWithValue[] = {"--rules",      "--check-rules", "--cgroup",   "--jsonl",  "--report",
                                             "--screenshot", "--instance",    "--duration", "--workers",
                                             "--stall-deadline", "--api-socket", "--view-group", "--admin-group",
                                             "--audit-log", "--metrics", "--listen", "--tls-cert", "--tls-key",
                                             "--tls-ca", "--status-every", "--history", "--history-days",
                                             "--history-max-mb", "--in-process-chains"};
    for (const char* o : kWithValue)
        if (option == o)
            return true;
    return false;
}

std::string usage()
{
    return R"(Usage: redirect-console [OPTIONS]

Runs the Redirect Console: loads the callout, runs the redirectors and shows
live redirected connections. With a display it opens the window; without one
(or with --headless) it runs the same engine headless.

  --demo                 self-contained sandbox with live traffic (private network
                         namespace and cgroup, local servers, two chains)
  --headless             no window, even with a display
  --rules FILE           rules file (JSON, see README); required headless unless --demo
  --check-rules FILE     validate a rules file and exit (0 valid, 2 invalid)
  --cgroup DIR           attach the callout to this cgroup v2 directory
                         (default: the whole machine)
  --duration SECONDS     stop after this long (headless)
  --jsonl FILE|-         write one JSON line per flow start and end ("-": stdout, and
                         nothing else goes there: no flow or status lines, a JSON summary)
  --print                one aligned line per ended flow on stdout (time, process[pid],
                         chain, destination, end reason, bytes up and down), status lines
                         and a summary that says what each counter means; the default
                         when stdout is a terminal. The log goes to stderr
  --status-every SECONDS with flow lines: a status line (open flows, new flows/s,
                         bytes/s, drops) this often when something changed (default 5;
                         0: none)
  -q, --quiet            log warnings and errors only; no flow lines, status lines or
                         summary on stdout
  -v, --verbose          log debug messages too (libbpf's notes while the callout loads,
                         what goes to stdout); -vv or twice: trace as well (each batch
                         of flow updates)
  --report FILE          write a report on exit; format from the extension
                         (.csv, .json, .html)
  --screenshot FILE      save the main window as PNG after startup (GUI)
  --instance NAME        callout instance name (default "default")
  --workers N            relay worker threads (default: one per CPU)
  --in-process-chains on|off
                         a chain through several of this node's redirectors carries its
                         bytes inside the relay; the connections between the hops are
                         still made and recorded, and stay idle (default on)
  --stall-deadline MS    new connections pass over our redirectors when the engine has shown
                         no life for this long (default 1000; 0 turns the check off)
  --help, --version

The service (redirect-consoled) takes the same options, and serves the control API:
  --api-socket PATH      Unix socket of the control API (default
                         /run/redirect-console/api.sock; "none": no API)
  --view-group NAME      members may view (default redirect-view)
  --admin-group NAME     members may view and change (default redirect-admin)
  --audit-log FILE       who changed what (default /var/log/redirect-console/audit.log)
  --metrics ADDR:PORT    serve Prometheus text metrics at http://ADDR:PORT/metrics
                         (IPv4; off by default)
  --listen ADDR:PORT     the API for remote consoles, mutual TLS only (off by default),
  --tls-cert FILE        with this node's certificate and key (PEM) and the CA whose
  --tls-key FILE         client certificates may come in; their OU gives the right:
  --tls-ca FILE          redirect-view or redirect-admin (see the README)
  --history PATH|off     keep every ended flow in this SQLite database, for QueryHistory
                         (default /var/lib/redirect-console/history.sqlite; with --demo a
                         file of its own that goes with it). One that cannot be opened is
                         logged as an error and the service runs without history
  --history-days N       flows that ended more than N days ago go (default 7)
  --history-max-mb N     the database stays within N MiB; the oldest flows go first
                         (default 256)
  --for-console          with --demo: the private service of the console that started it
                         (socket /run/redirect-console/demo-console-PID.sock, PID the
                         console's; its user may change it; stops when the console ends)

Exit codes: 0 done, 1 runtime error, 2 bad input, 3 not administrator,
4 callout could not load.
)";
}

std::optional<CommandLine> parseCommandLine(const std::vector<std::string>& args, std::string* error)
{
    CommandLine cl;
    auto value = [&](size_t& i, const std::string& flag) -> std::optional<std::string> {
        if (i + 1 >= args.size() || args[i + 1].empty()) {
            *error = flag + " needs a value";
            return std::nullopt;
        }
        return args[++i];
    };
    for (size_t i = 1; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--help" || a == "-h") {
            cl.help = true;
        } else if (a == "--version") {
            cl.version = true;
        } else if (a == "--headless") {
            cl.headless = true;
        } else if (a == "--demo") {
            cl.demo = true;
        } else if (a == "--for-console") {
            cl.forConsole = true;
        } else if (a == "--print") {
            cl.print = true;
        } else if (a == "--quiet" || a == "-q") {
            cl.quiet = true;
        } else if (a == "-v" || a == "--verbose") {
            cl.verbosity = std::min(cl.verbosity + 1, 2);
        } else if (a == "-vv") {
            cl.verbosity = 2;
        } else if (optionTakesValue(a)) {
            auto v = value(i, a);
            if (!v)
                return std::nullopt;
            if (a == "--rules")
                cl.rules = *v;
            else if (a == "--check-rules")
                cl.checkRules = *v;
            else if (a == "--cgroup")
                cl.cgroup = *v;
            else if (a == "--jsonl")
                cl.jsonl = *v;
            else if (a == "--screenshot")
                cl.screenshot = *v;
            else if (a == "--instance")
                cl.instance = *v;
            else if (a == "--api-socket")
                cl.apiSocket = *v;
            else if (a == "--view-group")
                cl.viewGroup = *v;
            else if (a == "--admin-group")
                cl.adminGroup = *v;
            else if (a == "--audit-log")
                cl.auditLog = *v;
            else if (a == "--metrics")
                cl.metrics = *v;
            else if (a == "--listen")
                cl.listen = *v;
            else if (a == "--tls-cert")
                cl.tlsCert = *v;
            else if (a == "--tls-key")
                cl.tlsKey = *v;
            else if (a == "--tls-ca")
                cl.tlsCa = *v;
            else if (a == "--history")
                cl.history = *v;
            else if (a == "--in-process-chains") {
                if (*v != "on" && *v != "off") {
                    *error = "--in-process-chains " + *v + ": expected on or off";
                    return std::nullopt;
                }
                cl.inProcessChains = *v == "on";
            }
            else if (a == "--history-days" || a == "--history-max-mb") {
                const bool days = a == "--history-days";
                if (!parsePositive(*v, days ? 36500 : 1 << 20, days ? &cl.historyDays : &cl.historyMaxMb)) {
                    *error = a + " " + *v + ": expected a positive number" + (days ? " of days" : " of MiB");
                    return std::nullopt;
                }
            }
            else if (a == "--report") {
                if (!engine::reportFormatForPath(*v)) {
                    *error = "--report " + *v + ": unknown format (use .csv, .json or .html)";
                    return std::nullopt;
                }
                cl.report = *v;
            } else if (a == "--duration") {
                if (!parseSeconds(*v, &cl.duration)) {
                    *error = "--duration " + *v + ": expected a positive number of seconds";
                    return std::nullopt;
                }
            } else if (a == "--status-every") {
                char* end = nullptr;
                errno = 0;
                double seconds = std::strtod(v->c_str(), &end);
                if (errno || *end || !std::isfinite(seconds) || seconds < 0 || seconds > 86400) {
                    *error = "--status-every " + *v + ": expected seconds from 0 (off) to 86400";
                    return std::nullopt;
                }
                cl.statusEvery = seconds;
            } else if (a == "--stall-deadline") {
                char* end = nullptr;
                long n = std::strtol(v->c_str(), &end, 10);
                if (v->empty() || *end || n < 0 || n > 600000) {
                    *error = "--stall-deadline " + *v + ": expected milliseconds from 0 (off) to 600000";
                    return std::nullopt;
                }
                cl.stallDeadlineMs = static_cast<int>(n);
            } else {
                char* end = nullptr;
                long n = std::strtol(v->c_str(), &end, 10);
                if (*end || n < 1 || n > 256) {
                    *error = "--workers " + *v + ": expected 1 to 256";
                    return std::nullopt;
                }
                cl.workers = static_cast<int>(n);
            }
        } else {
            *error = "unknown option " + a + " (see --help)";
            return std::nullopt;
        }
    }
    if (!cl.demo && !cl.rules.empty() && !cl.checkRules.empty()) {
        *error = "--rules and --check-rules do not go together";
        return std::nullopt;
    }
    if (!cl.listen.empty() && (cl.tlsCert.empty() || cl.tlsKey.empty() || cl.tlsCa.empty())) {
        *error = "--listen needs --tls-cert, --tls-key and --tls-ca: remote clients come in with mutual TLS only";
        return std::nullopt;
    }
    if (cl.forConsole && (!cl.demo || cl.apiSocket != CommandLine{}.apiSocket)) {
        *error = "--for-console goes with --demo only, and picks its own socket (no --api-socket)";
        return std::nullopt;
    }
    if (cl.quiet && cl.verbosity > 0) {
        *error = "--quiet and -v/--verbose do not go together";
        return std::nullopt;
    }
    if (cl.print && cl.jsonl == "-") {
        *error = "--print and --jsonl - both want stdout; give --jsonl a FILE to have both";
        return std::nullopt;
    }
    if (cl.print && cl.quiet) {
        *error = "--print and --quiet do not go together (--quiet prints no flow lines)";
        return std::nullopt;
    }
    if (cl.demo && !cl.cgroup.empty()) {
        *error = "--demo makes its own cgroup; --cgroup does not apply";
        return std::nullopt;
    }
    return cl;
}

std::optional<int> readCommandLine(int argc, char** argv, const char* program, std::optional<CommandLine>* out)
{
    std::string error;
    *out = parseCommandLine(std::vector<std::string>(argv, argv + argc), &error);
    if (!*out) {
        std::fprintf(stderr, "%s: %s\n", program, error.c_str());
        return ExitBadInput;
    }
    if ((*out)->help) {
        std::fputs(usage().c_str(), stdout);
        return ExitOk;
    }
    if ((*out)->version) {
        std::printf("%s %s\n", program, REDIRECT_VERSION);
        return ExitOk;
    }
    return std::nullopt;
}

bool isAdministrator()
{
    if (::geteuid() == 0)
        return true;
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("CapEff:", 0) != 0)
            continue;
        unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
        auto has = [&](int bit) { return (caps >> bit) & 1ULL; };
        return has(kCapBpf) && has(kCapNetAdmin) && has(kCapSysAdmin);
    }
    return false;
}

}  // namespace redirect::app

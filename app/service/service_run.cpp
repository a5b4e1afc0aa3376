#include "service_run.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_set>

#include <malloc.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include "session.h"
#include "engine.h"
#include "flow_history.h"
#include "flow_printer.h"
#include "output_file.h"
#include "report.h"
#include "rules.h"
#include "metrics.h"
#include "service_api.h"

namespace redirect::app {

namespace {

std::string hostName()
{
    char name[256] = {};
    ::gethostname(name, sizeof(name) - 1);
    return name;
}

// Writes the live JSON lines, one per flow start and one per flow end, to stdout or appended to the
// flow log (nullptr file and toStdout false: nowhere).
class JsonLines {
public:
    JsonLines(engine::AppendFile* file, bool toStdout) : file_(file), toStdout_(toStdout) {}
    /// False once a write to the flow log failed (reported once, with the reason).
    bool ok() const { return ok_; }
    void write(const std::vector<engine::Flow>& flows)
    {
        if (!file_ && !toStdout_)
            return;
        for (const engine::Flow& f : flows) {
            if (!ended_.contains(f.flowId) && started_.insert(f.flowId).second)
                line("flow_start", f);
            if (f.endNs != 0 && ended_.mark(f.flowId)) {
                started_.erase(f.flowId);
                line("flow_end", f);
            }
        }
        flush();
    }
    void summary(const engine::EngineStats& s)
    {
        if (!file_ && !toStdout_)
            return;
        nlohmann::json j = {{"event", "summary"},
                            {"flows", s.flows},
                            {"open_flows", s.openFlows},
                            {"classified", s.callout[CALLOUT_STAT_CLASSIFIED]},
                            {"redirected", s.callout[CALLOUT_STAT_REDIRECTED]},
                            {"hop_cap", s.callout[CALLOUT_STAT_HOP_CAP]},
                            {"records_missing", s.callout[CALLOUT_STAT_RECORDS_MISSING]},
                            {"stalled", s.callout[CALLOUT_STAT_STALLED]},
                            {"unverified", s.callout[CALLOUT_STAT_UNVERIFIED]},
                            {"callout_event_drops", s.callout[CALLOUT_STAT_EVENT_DROPS]},
                            {"queue_drops", s.queueDrops},
                            {"evicted", s.evicted},
                            {"udp_dropped", s.udpDropped}};
        pending_ += j.dump() + '\n';
        flush();
    }

private:
    void line(const char* event, const engine::Flow& f)
    {
        nlohmann::json j = engine::flowToJson(f);
        j["event"] = event;
        pending_ += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
    }
    // One write per batch: whole lines land together in an appended log another process tails.
    void flush()
    {
        if (pending_.empty())
            return;
        std::string error;
        if (toStdout_) {
            const bool written = std::fwrite(pending_.data(), 1, pending_.size(), stdout) == pending_.size();
            if ((!written || std::fflush(stdout) != 0) && ok_) {
                ok_ = false;  // the collector went away (SIGPIPE is blocked): its lines are lost
                spdlog::error("JSON lines: stdout: {}; later lines are lost", std::strerror(errno));
            }
        } else if (!file_->append(pending_, &error) && ok_) {
            ok_ = false;
            spdlog::error("flow log: {}; later lines may be missing", error);
        }
        pending_.clear();
    }
    engine::AppendFile* file_;
    bool toStdout_;
    bool ok_ = true;
    std::string pending_;
    std::unordered_set<uint64_t> started_;
    EndedFlows ended_;
};

int checkRules(const std::string& path)
{
    engine::RulesResult r = engine::loadRulesFile(path);
    if (!r.ok()) {
        std::fprintf(stderr, "%s:%s\n", path.c_str(), r.error.str().c_str());
        return ExitBadInput;
    }
    std::printf("%s: valid (%zu redirectors, %zu rules)\n", path.c_str(), r.rules.redirectors.size(),
                r.rules.rules.size());
    for (const std::string& warning : engine::ruleWarnings(r.rules, engine::wallNowNs()))
        std::fprintf(stderr, "%s:%s (warning)\n", path.c_str(), warning.c_str());
    return ExitOk;
}

bool writeReportFile(engine::Engine& eng, const CommandLine& cl)
{
    auto format = engine::reportFormatForPath(cl.report);
    engine::ReportMeta meta;
    meta.generator = "Redirect Console " REDIRECT_VERSION;
    meta.generatedNs = engine::wallNowNs();
    meta.scopeText = "all flows, callout scope " + eng.scope();
    meta.hostname = hostName();
    const std::vector<engine::Flow> flows = eng.snapshot();
    std::string error;
    bool ok = engine::writeWholeFile(
        cl.report, [&](std::ostream& out) { return engine::writeReport(out, *format, flows, {}, meta); }, &error);
    if (!ok) {
        spdlog::error("report not written: {}", error);
        return false;
    }
    spdlog::info("report written to {}", cl.report);
    return true;
}

// SIGHUP: the rules file again (a file that fails changes nothing and says why), and the flow log
// reopened at its path (logrotate moved the old one away).
void reload(const CommandLine& cl, engine::Engine& eng, service::ServiceApi& api, engine::AppendFile& flowLog)
{
    spdlog::info("SIGHUP: reloading");
    if (!cl.rules.empty()) {
        engine::RulesResult r = engine::loadRulesFile(cl.rules);
        engine::RuleError error = r.ok() ? eng.applyRules(r.rules) : r.error;
        if (error.message.empty())
            spdlog::info("rules file {} applied: {} redirectors, {} rules", cl.rules, r.rules.redirectors.size(),
                         r.rules.rules.size());
        else
            spdlog::error("rules file {}:{}; nothing changed", cl.rules, error.str());
        api.audit("SIGHUP", "reload_rules", cl.rules, error.message.empty() ? "applied" : "rejected: " + error.str());
    }
    if (flowLog.isOpen()) {
        engine::AppendFile reopened;
        std::string error;
        if (reopened.open(cl.jsonl, &error))
            flowLog = std::move(reopened);
        else
            spdlog::error("flow log {} not reopened: {}; writing on to the old file", cl.jsonl, error);
    }
}

// --for-console: this service lives as long as the console that started it (its parent, through
// pkexec's exec or directly). PR_SET_PDEATHSIG is set here, after the exec: an exec of a setuid
// program (pkexec) clears one the console set. A parent gone before that is seen as a new parent.
bool followConsole(std::string* error)
{
    const pid_t console = ::getppid();
    if (console <= 1) {
        *error = "--for-console: no console started this service";
        return false;
    }
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != console) {
        *error = "--for-console: the console that started this service has ended";
        return false;
    }
    return true;
}

// The flow history, when asked for. One that cannot be used is an error said loudly, and the
// service runs on without it: the history is a record, redirection is the service's job, and a
// refusal to start would take the redirectors (an inspector, a DLP agent) down with it, restart
// after restart. *state says which it is, for the API's status.
std::unique_ptr<service::FlowHistory> openHistory(const CommandLine& cl, std::string* path, std::string* state)
{
    std::string error;
    try {
        *path = service::historyPath(cl);
    } catch (const std::exception& e) {
        error = e.what();
    }
    *state = "off";
    if (path->empty() && error.empty())
        return nullptr;
    std::unique_ptr<service::FlowHistory> history;
    if (error.empty())
        history = service::FlowHistory::open({*path, cl.historyDays, cl.historyMaxMb}, &error);
    if (!history) {
        *state = "unavailable: " + error;
        spdlog::error("{}; the service runs WITHOUT flow history", error);
        return nullptr;
    }
    *state = *path;
    spdlog::info("flow history in {} (flows that ended in the last {} days, at most {} MiB)", *path, cl.historyDays,
                 cl.historyMaxMb);
    return history;
}

// The demo's history goes with it (its -wal and -shm files too).
void removeDemoHistory(const CommandLine& cl, const std::string& path)
{
    if (!cl.demo || cl.history != CommandLine{}.history || path.empty())
        return;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
        ::unlink((path + suffix).c_str());
}

}  // namespace

int runService(const CommandLine& cl)
{
    // Two malloc arenas, not eight per CPU: each relay thread's arena kept its own free space
    // (4 MB more resident with 10,000 open flows); the per-thread caches still take most of the
    // relay's allocations without a lock. Before any thread starts.
    ::mallopt(M_ARENA_MAX, 2);
    // Logs go to stderr: stdout may carry the JSON lines.
    spdlog::set_default_logger(spdlog::stderr_color_mt("redirect"));
    spdlog::set_level(cl.quiet ? spdlog::level::warn
                      : cl.verbosity >= 2 ? spdlog::level::trace
                      : cl.verbosity == 1 ? spdlog::level::debug
                                          : spdlog::level::info);
    if (!cl.checkRules.empty())
        return checkRules(cl.checkRules);
    if (!isAdministrator()) {
        std::fprintf(stderr,
                     "redirect-console: needs administrator rights (root, or CAP_BPF, CAP_NET_ADMIN and "
                     "CAP_SYS_ADMIN); nothing was started\n");
        return ExitNotAdministrator;
    }
    if (cl.rules.empty() && !cl.demo) {
        std::fprintf(stderr, "redirect-console: --rules FILE is required without --demo (see --help)\n");
        return ExitBadInput;
    }
    Session session;
    // The rules first: a bad rules file must not touch the flow log or the report.
    if (int code = session.loadRules(cl))
        return code;
    engine::AppendFile flowLog;
    std::string error;
    if (!cl.jsonl.empty() && cl.jsonl != "-" && !flowLog.open(cl.jsonl, &error)) {
        std::fprintf(stderr, "redirect-console: cannot write the flow log: %s\n", error.c_str());
        return ExitBadInput;
    }
    // The report is written on exit; only check now, creating nothing.
    if (!cl.report.empty() && !engine::checkWholeFileTarget(cl.report, &error)) {
        std::fprintf(stderr, "redirect-console: cannot write the report: %s\n", error.c_str());
        return ExitBadInput;
    }

    // Signals are taken synchronously by this thread; block them before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    // A stdout that closed (`--print | head`) is a failed write the flow printer reports, not the
    // end of the service and its report.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);

    std::string why;
    if (cl.forConsole && !followConsole(&why)) {
        std::fprintf(stderr, "redirect-consoled: %s\n", why.c_str());
        return ExitBadInput;
    }
    // The API's socket and audit log before the callout: if they fail, nothing was touched.
    std::unique_ptr<service::ServiceApi> api;
    try {
        api = std::make_unique<service::ServiceApi>(cl);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "redirect-consoled: %s\n", e.what());
        return ExitBadInput;
    }
    std::unique_ptr<service::Metrics> metrics;
    if (!cl.metrics.empty()) {
        try {
            metrics = std::make_unique<service::Metrics>(cl.metrics);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "redirect-consoled: --metrics: %s\n", e.what());
            return ExitBadInput;
        }
        spdlog::info("Prometheus metrics on http://{}/metrics", cl.metrics);
    }
    std::string historyFile, historyState;
    std::unique_ptr<service::FlowHistory> history = openHistory(cl, &historyFile, &historyState);
    struct RemoveDemoHistory {
        const CommandLine& cl;
        const std::string& path;
        std::unique_ptr<service::FlowHistory>& history;
        ~RemoveDemoHistory()
        {
            history.reset();
            removeDemoHistory(cl, path);
        }
    } removeDemoHistoryAtEnd{cl, historyFile, history};
    if (int code = session.start(cl))
        return code;
    engine::Engine* eng = session.engine.get();
    auto refreshMetrics = [&] {
        if (metrics)
            metrics->refresh(eng->stats(), eng->redirectors(), eng->ruleHits(), api->journalDrops());
    };
    try {
        api->start(*eng, session.demo ? session.demo->instance() : cl.instance, history.get(), historyState);
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return ExitRuntimeError;
    }
    sd_notify(0, "READY=1");

    JsonLines lines(flowLog.isOpen() ? &flowLog : nullptr, cl.jsonl == "-");
    auto start = std::chrono::steady_clock::now();
    // Lines for people only where a person reads them (or --print asks), and never into JSON lines.
    std::optional<FlowPrinter> printer;
    if (!cl.quiet && cl.jsonl != "-" && (cl.print || ::isatty(STDOUT_FILENO)))
        printer.emplace(STDOUT_FILENO, cl.statusEvery, start);
    spdlog::debug("stdout: {}; log level {}", printer ? "flow lines, status lines, summary"
                                              : cl.jsonl == "-" ? "JSON lines"
                                                                : "nothing",
                  spdlog::level::to_string_view(spdlog::get_level()));
    std::vector<engine::Flow> batch;
    uint64_t ticks = 0;
    uint64_t loops = 0;
    // The engine's updates to everyone who takes them: flow log, API clients, metrics (whose engine
    // counters are read about once a second, and on the last drain).
    auto deliver = [&](bool last) {
        batch.clear();
        if (batch.capacity() > 256)
            batch = {};  // a burst's capacity is not kept for good
        eng->drainFlows(batch);
        if (!batch.empty())
            spdlog::trace("{} flow updates drained", batch.size());
        lines.write(batch);
        if (printer) {
            printer->write(batch);
            if (auto now = std::chrono::steady_clock::now(); printer->statusDue(now))
                printer->status(now, eng->stats());
        }
        api->publish(batch);
        if (history)
            history->add(batch);
        if (metrics) {
            metrics->observe(batch);
            if (last || ++ticks % 10 == 0)
                refreshMetrics();
        }
    };
    for (;;) {
        timespec wait{0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&signals, nullptr, &wait);
        deliver(false);
        // Once a second, memory freed after a burst (10,000 connections at once) goes back to the
        // system, not only to malloc's free lists: 6 MB of resident memory with 10,000 open flows.
        if (++loops % 10 == 0)
            ::malloc_trim(0);
        if (sig == SIGHUP) {
            reload(cl, *eng, *api, flowLog);
            continue;
        }
        if (sig == SIGINT || sig == SIGTERM) {
            spdlog::info("stopping on {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        if (cl.duration > 0 &&
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= cl.duration)
            break;
    }
    sd_notify(0, "STOPPING=1");
    session.stop();
    deliver(true);
    api->stop();
    lines.summary(eng->stats());
    if (printer)
        printer->summary(std::chrono::steady_clock::now(), eng->stats());
    int code = lines.ok() ? ExitOk : ExitRuntimeError;
    if (!cl.report.empty() && !writeReportFile(*eng, cl))
        code = ExitRuntimeError;
    return code;
}

}  // namespace redirect::app

#include "headless.h"

#include <chrono>
#include <deque>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <unordered_set>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "session.h"
#include "engine.h"
#include "report.h"
#include "rules.h"

namespace redirect::app {

namespace {

std::string hostName()
{
    char name[256] = {};
    ::gethostname(name, sizeof(name) - 1);
    return name;
}

// Writes the live JSON lines: one per flow start and one per flow end.
class JsonLines {
public:
    explicit JsonLines(std::ostream* out) : out_(out) {}
    void write(const std::vector<engine::Flow>& flows)
    {
        if (!out_)
            return;
        for (const engine::Flow& f : flows) {
            if (!ended_.count(f.flowId) && started_.insert(f.flowId).second)
                line("flow_start", f);
            if (f.endNs != 0 && ended_.insert(f.flowId).second) {
                started_.erase(f.flowId);
                line("flow_end", f);
                // Remember ended ids only as long as a late update could still name them.
                endedOrder_.push_back(f.flowId);
                if (endedOrder_.size() > kEndedMemory) {
                    ended_.erase(endedOrder_.front());
                    endedOrder_.pop_front();
                }
            }
        }
        out_->flush();
    }
    void summary(const engine::EngineStats& s)
    {
        if (!out_)
            return;
        nlohmann::json j = {{"event", "summary"},
                            {"flows", s.flows},
                            {"open_flows", s.openFlows},
                            {"classified", s.callout[CALLOUT_STAT_CLASSIFIED]},
                            {"redirected", s.callout[CALLOUT_STAT_REDIRECTED]},
                            {"hop_cap", s.callout[CALLOUT_STAT_HOP_CAP]},
                            {"records_missing", s.callout[CALLOUT_STAT_RECORDS_MISSING]},
                            {"callout_event_drops", s.callout[CALLOUT_STAT_EVENT_DROPS]},
                            {"queue_drops", s.queueDrops},
                            {"evicted", s.evicted}};
        *out_ << j.dump() << '\n';
        out_->flush();
    }

private:
    void line(const char* event, const engine::Flow& f)
    {
        nlohmann::json j = engine::flowToJson(f);
        j["event"] = event;
        *out_ << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    std::ostream* out_;
    std::unordered_set<uint64_t> started_;
    std::unordered_set<uint64_t> ended_;
    std::deque<uint64_t> endedOrder_;
    static constexpr size_t kEndedMemory = 1 << 18;  // a days-long run must not grow without bound
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
    return ExitOk;
}

bool writeReportFile(engine::Engine& eng, const CommandLine& cl)
{
    auto format = engine::reportFormatForPath(cl.report);
    std::ofstream out(cl.report, std::ios::binary | std::ios::trunc);
    if (!out) {
        spdlog::error("cannot write report {}", cl.report);
        return false;
    }
    engine::ReportMeta meta;
    meta.generator = "Redirect Console " REDIRECT_VERSION;
    meta.generatedNs = engine::wallNowNs();
    meta.scopeText = "all flows, callout scope " + eng.scope();
    meta.hostname = hostName();
    bool ok = engine::writeReport(out, *format, eng.snapshot(), {}, meta);
    out.close();
    if (!ok || !out) {
        spdlog::error("report {} is incomplete", cl.report);
        return false;
    }
    spdlog::info("report written to {}", cl.report);
    return true;
}

}  // namespace

int runHeadless(const CommandLine& cl)
{
    // Logs go to stderr: stdout may carry the JSON lines.
    spdlog::set_default_logger(spdlog::stderr_color_mt("redirect"));
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
    std::unique_ptr<std::ofstream> jsonFile;
    std::ostream* jsonOut = nullptr;
    if (cl.jsonl == "-") {
        jsonOut = &std::cout;
    } else if (!cl.jsonl.empty()) {
        jsonFile = std::make_unique<std::ofstream>(cl.jsonl, std::ios::trunc);
        if (!*jsonFile) {
            std::fprintf(stderr, "redirect-console: cannot write %s\n", cl.jsonl.c_str());
            return ExitBadInput;
        }
        jsonOut = jsonFile.get();
    }
    if (!cl.report.empty() && !std::ofstream(cl.report, std::ios::app)) {
        std::fprintf(stderr, "redirect-console: cannot write report %s\n", cl.report.c_str());
        return ExitBadInput;
    }

    // Signals are taken synchronously by this thread; block them before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    Session session;
    if (int code = session.start(cl))
        return code;
    engine::Engine* eng = session.engine.get();

    JsonLines lines(jsonOut);
    auto start = std::chrono::steady_clock::now();
    std::vector<engine::Flow> batch;
    for (;;) {
        timespec wait{0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&signals, nullptr, &wait);
        batch.clear();
        eng->drainFlows(batch);
        lines.write(batch);
        if (sig == SIGINT || sig == SIGTERM) {
            spdlog::info("stopping on {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        if (cl.duration > 0 &&
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= cl.duration)
            break;
    }
    session.stop();
    batch.clear();
    eng->drainFlows(batch);
    lines.write(batch);
    lines.summary(eng->stats());
    int code = ExitOk;
    if (!cl.report.empty() && !writeReportFile(*eng, cl))
        code = ExitRuntimeError;
    return code;
}

}  // namespace redirect::app

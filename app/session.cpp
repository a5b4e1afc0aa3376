#include "session.h"

#include <cstdio>

#include <spdlog/spdlog.h>

namespace redirect::app {

int Session::loadRules(const CommandLine& cl)
{
    if (!cl.rules.empty()) {
        engine::RulesResult r = engine::loadRulesFile(cl.rules);
        if (!r.ok()) {
            std::fprintf(stderr, "%s:%s\n", cl.rules.c_str(), r.error.str().c_str());
            return ExitBadInput;
        }
        rules_ = r.rules;
    }
    rulesLoaded_ = true;
    return ExitOk;
}

int Session::start(const CommandLine& cl)
{
    if (!rulesLoaded_) {
        if (int code = loadRules(cl))
            return code;
    }
    engine::RuleSet rules = rules_;
    engine::EngineOptions options;
    options.cgroup = cl.cgroup;
    options.instance = cl.instance;
    options.workers = cl.workers;
    options.inProcessChains = cl.inProcessChains;
    options.stallDeadlineMs = cl.stallDeadlineMs;
    try {
        if (cl.demo) {
            demo = std::make_unique<DemoSandbox>();
            options.cgroup = demo->cgroup();
            options.netnsFd = demo->netnsFd();
            options.instance = demo->instance();
            if (cl.rules.empty())
                rules = demo->rules();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "redirect-console: demo sandbox: %s\n", e.what());
        return ExitRuntimeError;
    }
    try {
        engine = std::make_unique<engine::Engine>(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "redirect-console: the callout could not load: %s\n", e.what());
        return ExitCalloutFailed;
    }
    engine::RuleError error = engine->applyRules(rules);
    if (!error.message.empty()) {
        std::fprintf(stderr, "%s:%s\n", cl.rules.empty() ? "demo rules" : cl.rules.c_str(), error.str().c_str());
        return ExitBadInput;
    }
    for (auto& r : engine->redirectors())
        spdlog::info("redirector {} ({}): 127.0.0.1:{} [::1]:{}{}", r.id, r.name, r.port4, r.port6,
                     r.external ? " external" : "");
    if (demo)
        demo->startTraffic(*engine);
    return ExitOk;
}

void Session::stop()
{
    if (demo)
        demo->stopTraffic();
    if (engine)
        engine->stop();
}

Session::~Session()
{
    stop();
    engine.reset();  // the callout goes before the sandbox's cgroup
    demo.reset();
}

}  // namespace redirect::app

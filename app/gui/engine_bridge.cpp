#include "engine_bridge.h"

#include "engine.h"
#include "flow_model.h"
#include "log_sink.h"
#include "rules_model.h"

namespace redirect::gui {

namespace {

BridgeStats engineStats(const engine::Engine& engine)
{
    BridgeStats stats;
    const engine::EngineStats s = engine.stats();
    stats.calloutAttached = true;   // an Engine exists only with its callout loaded and attached
    stats.scope = QString::fromStdString(engine.scope());
    stats.eventDrops = s.callout[CALLOUT_STAT_EVENT_DROPS];
    stats.queueDrops = s.queueDrops;
    stats.stalled = s.callout[CALLOUT_STAT_STALLED];
    stats.unverified = s.callout[CALLOUT_STAT_UNVERIFIED];
    stats.evicted = s.evicted;
    stats.flows = s.flows;
    stats.openFlows = s.openFlows;
    for (const engine::RedirectorStatus& r : engine.redirectors())
        stats.redirectors.append({QString::fromStdString(r.name), r.port4, r.port6, r.external, r.enabled, r.active,
                                  r.available, QString::fromStdString(r.availability)});
    return stats;
}

}  // namespace

EngineBridge::EngineBridge(engine::Engine& engine, FlowModel* flows, RulesModel* rules, std::shared_ptr<LogSink> log,
                           QObject* parent)
    : EngineBridge(FlowSource{}, flows, rules, std::move(log), parent)
{
    engine::Engine* e = &engine;
    source_ = [this, e](std::vector<engine::Flow>& out) { return e->drainFlows(out, maxPerTick_); };
    hits_ = [e] { return e->ruleHits(); };
    stats_ = [e] { return engineStats(*e); };
    if (rules_) {
        rules_->setToggler([e](const std::string& id, bool enabled) { return e->setRuleEnabled(id, enabled); });
        rules_->setApplier([e](const engine::RuleSet& set) { return e->applyRules(set).message.empty(); });
        rules_->setRules(e->rules());
    }
}

EngineBridge::EngineBridge(FlowSource source, FlowModel* flows, RulesModel* rules, std::shared_ptr<LogSink> log,
                           QObject* parent)
    : QObject(parent), source_(std::move(source)), flows_(flows), rules_(rules), log_(std::move(log))
{
    timer_.setTimerType(Qt::PreciseTimer);
    connect(&timer_, &QTimer::timeout, this, &EngineBridge::tick);
}

void EngineBridge::start(int intervalMs)
{
    lastTickMs_ = -1;
    longestGapMs_ = 0;
    clock_.start();
    timer_.start(intervalMs);
}

void EngineBridge::stop() { timer_.stop(); }

void EngineBridge::tick()
{
    if (!clock_.isValid())
        clock_.start();
    const qint64 now = clock_.elapsed();
    const qint64 gap = lastTickMs_ < 0 ? 0 : now - lastTickMs_;
    lastTickMs_ = now;
    longestGapMs_ = std::max(longestGapMs_, gap);
    ++ticks_;

    if (source_ && flows_) {
        batch_.clear();
        if (source_(batch_) > 0 || !batch_.empty())
            flows_->applyBatch(std::move(batch_));
        batch_ = {};
    }
    if (hits_ && rules_)
        rules_->setHits(hits_());
    if (log_) {
        uint64_t dropped = 0;
        std::vector<std::string> lines = log_->take(&dropped);
        if (!lines.empty() || dropped > 0) {
            QStringList text;
            text.reserve(static_cast<qsizetype>(lines.size()));
            for (const std::string& line : lines)
                text << QString::fromStdString(line);
            emit logLines(text, dropped);
        }
    }
    if (stats_) {
        BridgeStats stats = stats_();
        if (!statsSent_ || !(stats == lastStats_)) {
            lastStats_ = std::move(stats);
            statsSent_ = true;
            emit statsChanged(lastStats_);
        }
    }
    emit ticked(gap);
}

}  // namespace redirect::gui

#include "engine_bridge.h"

#include <cmath>

#include "node_client.h"
#include "flow_model.h"
#include "log_sink.h"
#include "rules_model.h"

namespace redirect::gui {

namespace {

BridgeStats nodeStats(const client::NodeClient& node)
{
    const client::NodeView v = node.view();
    const v1::NodeStatus& s = v.status;
    BridgeStats stats;
    stats.node = QString::fromStdString(node.endpoint().name) + QStringLiteral(": ") +
                 QString::fromUtf8(client::nodeStateName(v.state));
    stats.calloutAttached = v.state == client::NodeState::Connected && v.haveStatus;
    stats.canChange = v.haveStatus && s.rights() == "change";
    stats.notice = QString::fromStdString(v.reason);
    if (!v.haveStatus)
        return stats;
    stats.scope = QString::fromStdString(s.scope());
    stats.eventDrops = s.callout_event_drops();
    stats.queueDrops = s.queue_drops() + s.journal_drops() + v.dropped;
    stats.stalled = s.stalled();
    stats.unverified = s.unverified();
    stats.evicted = s.evicted();
    stats.flows = s.flows();
    stats.openFlows = s.open_flows();
    for (const v1::Redirector& r : s.redirectors()) {
        BridgeStats::Redirector red;
        red.name = QString::fromStdString(r.name());
        red.port4 = static_cast<quint16>(r.port4());
        red.port6 = static_cast<quint16>(r.port6());
        red.external = r.external();
        red.enabled = r.enabled();
        red.active = r.active();
        red.bytesUp = r.bytes_up();
        red.bytesDown = r.bytes_down();
        red.available = r.available();
        red.availability = QString::fromStdString(r.availability());
        stats.redirectors.append(red);
    }
    return stats;
}

}  // namespace

EngineBridge::EngineBridge(std::vector<client::NodeClient*> nodes, FlowModel* flows, RulesModel* rules,
                           std::shared_ptr<LogSink> log, QObject* parent)
    : EngineBridge(FlowSource{}, flows, rules, std::move(log), parent)
{
    nodes_ = std::move(nodes);
    node_ = nodes_.front();
    client::NodeClient* n = node_;
    source_ = [this](std::vector<engine::Flow>& out) {
        size_t taken = 0;
        for (client::NodeClient* node : nodes_) {
            const size_t before = out.size();
            taken += node->takeFlows(out, maxPerTick_);
            for (size_t i = before; i < out.size(); ++i)
                out[i].node = node->endpoint().name;
        }
        return taken;
    };
    hits_ = [n] {
        std::map<std::string, engine::RuleHits> hits;
        const client::NodeView v = n->view();  // a copy: the loop must not outlive a temporary
        for (const v1::RuleState& r : v.rules.rules())
            hits[r.id()] = {r.redirected(), r.bypassed()};
        return hits;
    };
    stats_ = [this] {
        BridgeStats stats = nodeStats(*node_);
        for (client::NodeClient* node : nodes_) {
            const client::NodeView v = node->view();
            const v1::NodeStatus& s = v.status;
            stats.nodes.append({QString::fromStdString(node->endpoint().name),
                                QString::fromUtf8(client::nodeStateName(v.state)), QString::fromStdString(v.reason),
                                QString::fromStdString(s.version()), QString::fromStdString(s.scope()),
                                // rounded: a table that changes with every last digit is no help
                                std::round(v.flowsPerSecond * 10) / 10,
                                s.callout_event_drops() + s.queue_drops() + s.journal_drops() + v.dropped});
        }
        for (size_t i = 1; i < nodes_.size(); ++i) {  // the others' state, after the first's
            const client::NodeView v = nodes_[i]->view();
            stats.node += QStringLiteral(", %1: %2").arg(QString::fromStdString(nodes_[i]->endpoint().name),
                                                          QString::fromUtf8(client::nodeStateName(v.state)));
        }
        return stats;
    };
    if (rules_) {
        rules_->setToggler([n](const std::string& id, bool enabled) { return n->setRuleEnabled(id, enabled).ok; });
        rules_->setApplier([this](const engine::RuleSet& set) {
            QString error;
            return applyRules(set, &error);
        });
    }
}

bool EngineBridge::applyRules(const engine::RuleSet& rules, QString* error)
{
    if (!node_) {
        *error = tr("not connected to a node");
        return false;
    }
    client::NodeClient::Result r = node_->applyRules(engine::rulesToJson(rules));
    if (!r.ok) {
        *error = r.line > 0 ? QStringLiteral("%1:%2: %3").arg(r.line).arg(r.column).arg(QString::fromStdString(r.error))
                            : QString::fromStdString(r.error);
        return false;
    }
    refreshRules();
    return true;
}

// The node's rules into the rules model when they changed (here or by another administrator).
void EngineBridge::refreshRules()
{
    if (!node_)
        return;
    const client::NodeView v = node_->view();
    if (!v.haveRules || v.rules.json() == rulesJson_)
        return;
    engine::RulesResult parsed = engine::parseRules(v.rules.json());
    if (!parsed.ok())
        return;  // a newer node's keys this console does not know: keep what it shows
    rulesJson_ = v.rules.json();
    rulesSet_ = parsed.rules;
    // Our own change is in the model already: a reset would only lose the user's place in it.
    if (rules_ && !(rules_->rules() == rulesSet_))
        rules_->setRules(rulesSet_);
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
    refreshRules();
    if (hits_ && rules_)
        rules_->setHits(hits_());
    QStringList nodeLines;
    for (client::NodeClient* node : nodes_)
        for (const v1::LogLine& line : node->takeLog())
            nodeLines << QStringLiteral("%1 [%2] %3").arg(QString::fromStdString(node->endpoint().name),
                                                       QString::fromStdString(line.level()),
                                                       QString::fromStdString(line.text()));
    if (!nodeLines.isEmpty())
        emit logLines(nodeLines, 0);
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

#include "engine_bridge.h"

#include <QPointer>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "flow_model.h"
#include "log_sink.h"
#include "rules_model.h"

namespace redirect::gui {

namespace {

// The selected node's part of the status bar.
void fillSelected(BridgeStats& stats, const client::NodeClient& node, const client::NodeView& v)
{
    const v1::NodeStatus& s = v.status;
    stats.node = QString::fromStdString(node.endpoint().name) + QStringLiteral(": ") +
                 QString::fromUtf8(client::nodeStateName(v.state));
    stats.calloutAttached = v.state == client::NodeState::Connected && v.haveStatus;
    stats.canChange = v.haveStatus && s.rights() == "change";
    stats.notice = QString::fromStdString(v.reason);
    if (!v.haveStatus)
        return;
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
        red.recordsMissing = r.records_missing();
        stats.redirectors.append(red);
    }
}

}  // namespace

// Runs the bridge's commands one after another on a thread of its own, in the order given (a
// toggle and its undo must reach the node in that order). Commands wait for the node's answer
// (bounded by the client's deadline); the destructor lets the one under way finish.
class CommandQueue {
public:
    CommandQueue() : thread_([this] { run(); }) {}
    ~CommandQueue()
    {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }
    void push(std::function<void()> command)
    {
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(command));
        }
        wake_.notify_all();
    }

private:
    void run()
    {
        for (;;) {
            std::function<void()> command;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
                if (stopping_)
                    return;
                command = std::move(queue_.front());
                queue_.pop_front();
            }
            command();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> queue_;
    bool stopping_ = false;
    std::thread thread_;  // last: it starts in the constructor and uses the members above
};

EngineBridge::EngineBridge(FlowModel* flows, RulesModel* rules, std::shared_ptr<LogSink> log, QObject* parent)
    : EngineBridge(FlowSource{}, flows, rules, std::move(log), parent)
{
    commands_ = std::make_unique<CommandQueue>();
    queries_ = std::make_unique<CommandQueue>();
    source_ = [this](std::vector<engine::Flow>& out) {
        size_t taken = 0;
        for (const NodePtr& node : nodes_) {
            const size_t before = out.size();
            taken += node->takeFlows(out, maxPerTick_);
            for (size_t i = before; i < out.size(); ++i)
                out[i].node = node->endpoint().name;
        }
        return taken;
    };
    hits_ = [this] {
        std::map<std::string, engine::RuleHits> hits;
        if (NodePtr node = selected()) {
            const client::NodeView v = node->view();  // a copy: the loop must not outlive a temporary
            for (const v1::RuleState& r : v.rules.rules())
                hits[r.id()] = {r.redirected(), r.bypassed()};
        }
        return hits;
    };
    stats_ = [this] { return nodeStats(); };
    if (rules_) {
        // Optimistic: the model shows the change at once; a refusal comes back as commandFailed,
        // and the panel shows the node's rules again.
        rules_->setToggler([this](const std::string& id, bool enabled) {
            submit(tr("Rule %1").arg(QString::fromStdString(id)),
                   [id, enabled](client::NodeClient& n) { return n.setRuleEnabled(id, enabled); }, {});
            return true;
        });
        rules_->setApplier([this](const engine::RuleSet& set) {
            std::vector<std::string> order;
            for (const engine::RuleSpec& r : set.rules)
                order.push_back(r.id);
            submit(tr("Rule order"), [order](client::NodeClient& n) { return n.reorderRules(order); }, {});
            return true;
        });
    }
}

EngineBridge::EngineBridge(FlowSource source, FlowModel* flows, RulesModel* rules, std::shared_ptr<LogSink> log,
                           QObject* parent)
    : QObject(parent), source_(std::move(source)), flows_(flows), rules_(rules), log_(std::move(log))
{
    timer_.setTimerType(Qt::PreciseTimer);
    connect(&timer_, &QTimer::timeout, this, &EngineBridge::tick);
}

EngineBridge::~EngineBridge()
{
    for (const NodePtr& node : nodes_)
        node->stop();  // a history query under way ends here, not at its deadline
    commands_.reset();  // before the nodes its commands use
    queries_.reset();
}

bool EngineBridge::addNode(const client::NodeEndpoint& endpoint, QString* error)
{
    const QString name = QString::fromStdString(endpoint.name);
    if (name.trimmed().isEmpty() || name != name.trimmed() || name.contains(QLatin1Char(' '))) {
        *error = tr("a node needs a name, without spaces");
        return false;
    }
    if (nodeNames().contains(name)) {
        *error = tr("there is a node named %1 already").arg(name);
        return false;
    }
    auto node = std::make_shared<client::NodeClient>(endpoint);
    node->start();
    nodes_.push_back(std::move(node));
    if (nodes_.size() == 1)
        selectNode(name);
    emit nodesChanged();
    return true;
}

bool EngineBridge::removeNode(const QString& name)
{
    const qsizetype i = nodeNames().indexOf(name);
    if (i < 0)
        return false;
    const auto index = static_cast<size_t>(i);
    NodePtr node = nodes_[index];
    nodes_.erase(nodes_.begin() + i);
    if (index < selected_) {
        --selected_;
    } else if (index == selected_) {
        selected_ = 0;  // the first node's rules, shown anew (none when none is left)
        forgetRules();
        refreshRules();
    }
    // Its streams end here; a command of its under way keeps it alive until it is answered.
    node->stop();
    emit nodesChanged();
    return true;
}

QStringList EngineBridge::nodeNames() const
{
    QStringList names;
    for (const NodePtr& node : nodes_)
        names << QString::fromStdString(node->endpoint().name);
    return names;
}

bool EngineBridge::selectNode(const QString& name)
{
    const qsizetype i = nodeNames().indexOf(name);
    if (i < 0)
        return false;
    if (static_cast<size_t>(i) != selected_ || rulesJson_.empty()) {
        selected_ = static_cast<size_t>(i);
        forgetRules();  // another node's rules: the panel shows them as soon as they are known
        refreshRules();
    }
    emit nodesChanged();
    return true;
}

QString EngineBridge::selectedNode() const
{
    NodePtr node = selected();
    return node ? QString::fromStdString(node->endpoint().name) : QString();
}

void EngineBridge::forgetRules()
{
    rulesJson_.clear();
    rulesSet_ = {};
    if (rules_)
        rules_->setRules({});
}

EngineBridge::NodePtr EngineBridge::selected() const
{
    return selected_ < nodes_.size() ? nodes_[selected_] : nullptr;
}

void EngineBridge::submit(const QString& what, std::function<client::NodeClient::Result(client::NodeClient&)> call,
                          Done done)
{
    NodePtr node = selected();
    if (!node || !commands_) {
        const QString reason = tr("not connected to a node");
        rulesJson_.clear();  // the panel shows the node's rules (none) again
        if (rules_)
            rules_->setRules(rulesSet_);
        if (done)
            done(false, reason);
        else
            emit commandFailed(what, reason);
        return;
    }
    commands_->push([this, node, what, call = std::move(call), done = std::move(done)] {
        const client::NodeClient::Result r = call(*node);
        QString error = QString::fromStdString(r.error);
        if (!r.ok && r.line > 0)
            error = QStringLiteral("%1:%2: %3").arg(r.line).arg(r.column).arg(error);
        // Back on the GUI thread; dropped with the bridge when it is gone by then.
        QMetaObject::invokeMethod(
            this,
            [this, ok = r.ok, error, what, done] {
                if (!ok) {
                    rulesJson_.clear();  // the panel shows the node's rules again, not the refused change
                    if (!done)
                        emit commandFailed(what, error);
                }
                refreshRules();
                if (done)
                    done(ok, error);
            },
            Qt::QueuedConnection);
    });
}

void EngineBridge::applyRules(const engine::RuleSet& rules, Done done)
{
    const std::string json = engine::rulesToJson(rules);
    submit(tr("Rules"), [json](client::NodeClient& n) { return n.applyRules(json); }, std::move(done));
}

void EngineBridge::ask(std::function<std::function<void()>(client::NodeClient&)> work, const std::function<void()>& noNode,
                       CommandQueue* queue)
{
    NodePtr node = selected();
    queue = queue ? queue : commands_.get();
    if (!node || !queue) {
        noNode();
        return;
    }
    // In the command queue: the answer is for the node as it is after the changes before it.
    queue->push([this, node, work = std::move(work)] {
        std::function<void()> answer = work(*node);
        // Back on the GUI thread; dropped with the bridge when it is gone by then.
        QMetaObject::invokeMethod(this, std::move(answer), Qt::QueuedConnection);
    });
}

void EngineBridge::previewRules(const engine::RuleSet& rules, uint32_t windowSeconds, PreviewDone done)
{
    ask(
        [json = engine::rulesToJson(rules), windowSeconds, done](client::NodeClient& node) -> std::function<void()> {
            std::string error;
            std::optional<v1::RulesPreview> preview = node.previewRules(json, windowSeconds, 20, &error);
            return [preview = std::move(preview), error = QString::fromStdString(error), done] { done(preview, error); };
        },
        [done] { done(std::nullopt, tr("not connected to a node")); });
}

void EngineBridge::getCoexistence(CoexistenceDone done)
{
    ask(
        [done](client::NodeClient& node) -> std::function<void()> {
            std::string error;
            std::optional<v1::Coexistence> answer = node.getCoexistence(&error);
            return [answer = std::move(answer), error = QString::fromStdString(error), done] { done(answer, error); };
        },
        [done] { done(std::nullopt, tr("not connected to a node")); });
}

void EngineBridge::queryHistory(int64_t fromNs, int64_t toNs, uint64_t limit, FlowModel* into, Done done)
{
    ask(
        [fromNs, toNs, limit, model = QPointer<FlowModel>(into), done](client::NodeClient& node) -> std::function<void()> {
            auto h = std::make_shared<client::NodeClient::History>(node.queryHistory(fromNs, toNs, limit));
            for (engine::Flow& f : h->flows)
                f.node = node.endpoint().name;
            return [h, model, done] {
                if (h->ok && model)
                    model->applyBatch(std::move(h->flows));
                if (done)
                    done(h->ok, QString::fromStdString(h->error));
            };
        },
        [done] {
            if (done)
                done(false, tr("not connected to a node"));
        },
        queries_.get());
}

// The selected node's rules into the rules model when they changed (here or by another administrator).
void EngineBridge::refreshRules()
{
    NodePtr node = selected();
    if (!node)
        return;
    const client::NodeView v = node->view();
    if (!v.haveRules || (!rulesJson_.empty() && v.rules.json() == rulesJson_))
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

BridgeStats EngineBridge::nodeStats() const
{
    BridgeStats stats;
    const NodePtr chosen = selected();
    for (const NodePtr& node : nodes_) {
        const client::NodeView v = node->view();
        const v1::NodeStatus& s = v.status;
        stats.nodes.append({QString::fromStdString(node->endpoint().name),
                            QString::fromUtf8(client::nodeStateName(v.state)), QString::fromStdString(v.reason),
                            QString::fromStdString(s.version()), QString::fromStdString(s.scope()),
                            // rounded: a table that changes with every last digit is no help
                            std::round(v.flowsPerSecond * 10) / 10,
                            s.callout_event_drops() + s.queue_drops() + s.journal_drops() + v.dropped});
        if (node == chosen)
            fillSelected(stats, *node, v);
    }
    for (size_t i = 0; i < nodes_.size(); ++i)  // the others' state, after the selected one's
        if (nodes_[i] != chosen)
            stats.node += QStringLiteral(", %1: %2").arg(stats.nodes[static_cast<qsizetype>(i)].name,
                                                          stats.nodes[static_cast<qsizetype>(i)].state);
    if (nodes_.empty())
        stats.notice = tr("no node: connect to one (Nodes tab, Connect to node…)");
    return stats;
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
        if (source_(batch_) > 0 || !batch_.empty()) {
            emit flowsArrived(batch_);
            flows_->applyBatch(std::move(batch_));
        }
        batch_ = {};
    }
    refreshRules();
    if (hits_ && rules_)
        rules_->setHits(hits_());
    QStringList nodeLines;
    for (const NodePtr& node : nodes_)
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

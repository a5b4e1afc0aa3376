// The GUI's one way to the nodes (services, through their control API): a 10 Hz timer in the GUI
// thread takes the flow updates the node clients received into the flow model, refreshes the
// selected node's rules and their hits, takes log lines and reports the status bar's numbers. Rule
// changes go back through it, on a thread of its own: the GUI never waits on the wire. No other GUI
// code talks to a node.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QTimer>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flow.h"
#include "flow_table.h"

#include "node_client.h"
#include "rules.h"

namespace redirect::gui {

class FlowModel;
class LogSink;
class RulesModel;

/// What the status bar shows.
struct BridgeStats {
    struct Redirector {
        QString name;
        quint16 port4 = 0;
        quint16 port6 = 0;
        bool external = false;
        bool enabled = true;
        quint64 active = 0;
        quint64 bytesUp = 0;
        quint64 bytesDown = 0;
        bool available = true;         ///< the callout can send connections there now
        QString availability;          ///< who listens, or why connections go direct
        quint64 recordsMissing = 0;    ///< its connections that carried no records (no SET)
        bool operator==(const Redirector&) const = default;
    };
    /// One line of the Nodes view.
    struct NodeLine {
        QString name;
        QString state;                 ///< connecting, connected, reconnecting, refused
        QString reason;                ///< why refused, or the last connection error
        QString version;
        QString scope;
        double flowsPerSecond = 0;
        quint64 drops = 0;             ///< callout events, queue, journal and client drops together
        bool operator==(const NodeLine&) const = default;
    };
    QList<NodeLine> nodes;             ///< every node, in the order they were added
    bool calloutAttached = false;
    QString node;                      ///< the node's name and state ("local: connected")
    bool canChange = false;            ///< this user may change the node's rules
    QString notice;                    ///< why not connected, or why changes are refused
    QString scope;                     ///< cgroup path the callout is attached to
    QList<Redirector> redirectors;
    quint64 eventDrops = 0;            ///< callout events lost in the ring buffer
    quint64 queueDrops = 0;            ///< flow updates nobody took in time
    quint64 stalled = 0;               ///< connects that went direct: the engine missed its heartbeat
    quint64 unverified = 0;            ///< connects that went direct: no verified listener
    quint64 evicted = 0;               ///< flows dropped at the engine's retention cap
    quint64 flows = 0;
    quint64 openFlows = 0;
    bool operator==(const BridgeStats&) const = default;
};

class CommandQueue;

class EngineBridge : public QObject {
    Q_OBJECT
public:
    using FlowSource = std::function<size_t(std::vector<engine::Flow>& out)>;
    using HitsSource = std::function<std::map<std::string, engine::RuleHits>()>;
    using StatsSource = std::function<BridgeStats()>;
    /// A command's answer, on the GUI thread: ok, or the node's reason (line:column for rules text).
    using Done = std::function<void(bool ok, const QString& error)>;

    /// Drives the nodes given with addNode(): every node's flows go into `flows`, tagged with the
    /// node's name; `rules` and the status bar follow the selected node (the first until selectNode()).
    EngineBridge(FlowModel* flows, RulesModel* rules, std::shared_ptr<LogSink> log, QObject* parent = nullptr);
    /// Drives a plain flow source (tests, replays); hits and stats come from the optional setters.
    EngineBridge(FlowSource source, FlowModel* flows, RulesModel* rules = nullptr,
                 std::shared_ptr<LogSink> log = {}, QObject* parent = nullptr);
    ~EngineBridge() override;

    /// Starts watching a node; false with the reason when its name is empty or taken.
    bool addNode(const client::NodeEndpoint& endpoint, QString* error);
    /// Stops watching a node; its rows stay in the table. False when there is no such node.
    bool removeNode(const QString& name);
    /// Every node's name, in the order they were added.
    QStringList nodeNames() const;
    /// The node whose rules the rules panel shows and edits and whose numbers the status bar shows.
    bool selectNode(const QString& name);
    QString selectedNode() const;

    void setHitsSource(HitsSource source) { hits_ = std::move(source); }
    void setStatsSource(StatsSource source) { stats_ = std::move(source); }
    /// Flow updates taken from a live engine per tick at most (bounds one tick's work).
    void setMaxFlowsPerTick(size_t flows) { maxPerTick_ = flows; }

    void start(int intervalMs = 100);
    void stop();
    bool isRunning() const { return timer_.isActive(); }
    /// Longest gap between two ticks since start() or resetLongestGap().
    qint64 longestGapMs() const { return longestGapMs_; }
    void resetLongestGap() { longestGapMs_ = 0; }
    quint64 tickCount() const { return ticks_; }
    const BridgeStats& lastStats() const { return lastStats_; }

    /// The selected node's rules as last seen (empty without a node).
    engine::RuleSet rules() const { return rulesSet_; }
    /// Replaces the selected node's rules, all or nothing. The call runs off the GUI thread; `done`
    /// comes back on it (not at all when the bridge is gone first).
    /// The selected node's dry run of `rules` (what they would change for the connections it saw
    /// in the last `windowSeconds`), answered on the GUI thread; nullopt with the reason when the
    /// node could not be asked.
    using PreviewDone = std::function<void(std::optional<v1::RulesPreview> preview, const QString& error)>;
    void previewRules(const engine::RuleSet& rules, uint32_t windowSeconds, PreviewDone done);
    void applyRules(const engine::RuleSet& rules, Done done);
    /// The selected node's coexistence inventory (who else is on its hooks), asked on the command
    /// thread; `done` comes back on the GUI thread with the answer or the reason there is none.
    using CoexistenceDone = std::function<void(const std::optional<v1::Coexistence>&, const QString& error)>;
    void getCoexistence(CoexistenceDone done);
    /// Ended flows from the selected node's history whose lifetime overlaps [fromNs, toNs] (unix ns,
    /// 0: unbounded), at most `limit` (0: all), in the order they ended, as rows of `into` (a model
    /// of the caller's, not the live table: the same conversion as the live flow stream, tagged
    /// with the node's name; rows beyond into's retention are evicted as there). The query runs off
    /// the GUI thread, apart from rule changes; `done` comes back on it (not at all when the bridge
    /// is gone first) with ok, or the node's reason.
    void queryHistory(int64_t fromNs, int64_t toNs, uint64_t limit, FlowModel* into, Done done);

public slots:
    /// One drain; the timer calls it, tests may too.
    void tick();

signals:
    /// Each tick's flow updates, just before they go into the model (charts count them).
    void flowsArrived(const std::vector<engine::Flow>& batch);
    /// After every tick, with the time since the previous tick started (0 for the first).
    void ticked(qint64 gapMs);
    /// When the status numbers change (checked every tick).
    void statsChanged(const redirect::gui::BridgeStats& stats);
    /// Log lines taken this tick (one signal per tick, none when there are none).
    void logLines(const QStringList& lines, quint64 dropped);
    /// Nodes were added or removed, or another one was selected.
    void nodesChanged();
    /// A change the node refused or never got (toggle, reorder): what, and why. The rules panel
    /// shows the node's rules again.
    void commandFailed(const QString& what, const QString& reason);

private:
    /// Runs `work` for the selected node on the command thread (or `queue`); what it returns runs on
    /// the GUI thread. `noNode` runs (at once) when there is no node to ask.
    void ask(std::function<std::function<void()>(client::NodeClient&)> work, const std::function<void()>& noNode,
             CommandQueue* queue = nullptr);

    using NodePtr = std::shared_ptr<client::NodeClient>;
    NodePtr selected() const;
    /// The panel shows no rules until the selected node's are known.
    void forgetRules();
    void refreshRules();
    /// Runs `call` on the command thread against the selected node; `done` on the GUI thread.
    void submit(const QString& what, std::function<client::NodeClient::Result(client::NodeClient&)> call, Done done);
    BridgeStats nodeStats() const;

    std::vector<NodePtr> nodes_;
    size_t selected_ = 0;
    std::unique_ptr<CommandQueue> commands_;
    std::unique_ptr<CommandQueue> queries_;  // history queries: a long one holds up no rule change
    std::string rulesJson_;            // the node's rules text last loaded into rules_
    engine::RuleSet rulesSet_;
    FlowSource source_;
    HitsSource hits_;
    StatsSource stats_;
    FlowModel* flows_;
    RulesModel* rules_;
    std::shared_ptr<LogSink> log_;
    size_t maxPerTick_ = 20000;
    std::vector<engine::Flow> batch_;
    QTimer timer_;
    QElapsedTimer clock_;
    qint64 lastTickMs_ = -1;
    qint64 longestGapMs_ = 0;
    quint64 ticks_ = 0;
    BridgeStats lastStats_;
    bool statsSent_ = false;
};

}  // namespace redirect::gui

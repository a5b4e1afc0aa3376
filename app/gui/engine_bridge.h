// The GUI's one way to a node (the service, through its control API): a 10 Hz timer in the GUI
// thread takes the flow updates the node client received into the flow model, refreshes rules and
// their hits, takes log lines and reports the status bar's numbers. Rule changes go back through it.
// No other GUI code talks to a node.
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
#include <string>
#include <vector>

#include "flow.h"
#include "flow_table.h"

#include "rules.h"

namespace redirect::client {
class NodeClient;
}

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

class EngineBridge : public QObject {
    Q_OBJECT
public:
    using FlowSource = std::function<size_t(std::vector<engine::Flow>& out)>;
    using HitsSource = std::function<std::map<std::string, engine::RuleHits>()>;
    using StatsSource = std::function<BridgeStats()>;

    /// Drives nodes through their clients (started already): every node's flows go into `flows`,
    /// tagged with the node's name; `rules` and the status bar follow the first node.
    EngineBridge(std::vector<client::NodeClient*> nodes, FlowModel* flows, RulesModel* rules,
                 std::shared_ptr<LogSink> log, QObject* parent = nullptr);
    EngineBridge(client::NodeClient& node, FlowModel* flows, RulesModel* rules, std::shared_ptr<LogSink> log,
                 QObject* parent = nullptr)
        : EngineBridge(std::vector<client::NodeClient*>{&node}, flows, rules, std::move(log), parent)
    {
    }
    /// Drives a plain flow source (tests, replays); hits and stats come from the optional setters.
    EngineBridge(FlowSource source, FlowModel* flows, RulesModel* rules = nullptr,
                 std::shared_ptr<LogSink> log = {}, QObject* parent = nullptr);

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

    /// The node's rules as last seen (empty without a node).
    engine::RuleSet rules() const { return rulesSet_; }
    /// Replaces the node's rules, all or nothing; false with the reason (line:column) in *error.
    bool applyRules(const engine::RuleSet& rules, QString* error);

public slots:
    /// One drain; the timer calls it, tests may too.
    void tick();

signals:
    /// After every tick, with the time since the previous tick started (0 for the first).
    void ticked(qint64 gapMs);
    /// When the status numbers change (checked every tick).
    void statsChanged(const redirect::gui::BridgeStats& stats);
    /// Log lines taken this tick (one signal per tick, none when there are none).
    void logLines(const QStringList& lines, quint64 dropped);

private:
    void refreshRules();

    client::NodeClient* node_ = nullptr;  // the first node: rules and status bar
    std::vector<client::NodeClient*> nodes_;
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

// The Nodes tab: every node the console watches, with its state (connected, reconnecting,
// refused and why), version, callout scope, new flows per second and drops; "Connect to node…"
// adds a remote node (remembered for the next start), "Remove" stops watching one, and the row
// selected is the node whose rules the Rules tab shows and edits.
#pragma once

#include <QTableWidget>
#include <QWidget>

#include "engine_bridge.h"

class QPushButton;

namespace redirect::gui {

class ConnectDialog;

/// Adds the remote nodes "Connect to node…" remembered (QSettings); one that cannot be added is
/// said in the log.
void addRememberedNodes(EngineBridge& bridge);

class NodesView : public QTableWidget {
    Q_OBJECT
public:
    enum Column { Name, State, Version, Scope, FlowsPerSecond, Drops, ColumnCount };
    explicit NodesView(QWidget* parent = nullptr);
    void show(const QList<BridgeStats::NodeLine>& nodes);
    /// Selects the row of `name` without signalling a choice.
    void markSelected(const QString& name);
};

class NodesPage : public QWidget {
    Q_OBJECT
public:
    explicit NodesPage(EngineBridge* bridge, QWidget* parent = nullptr);
    NodesView* table() const { return table_; }
    /// Opens "Connect to node…" (window-modal, not blocking); a node it adds is remembered.
    ConnectDialog* openConnectDialog();
    /// Stops watching the selected node and forgets it; false when none is selected.
    bool removeSelected();

private:
    EngineBridge* bridge_;
    NodesView* table_;
    QPushButton* remove_;
};

}  // namespace redirect::gui
